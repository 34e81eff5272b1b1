/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent of bench/ingest: it prints, as fast as it can, stream-json lines
 * of the shapes the Claude Code CLI prints in a working session (copied from
 * tests/fuzz/fuzz-stream-json/): a system/init line, then assistant text,
 * thinking and tool_use lines and the user tool_result lines that answer
 * them, in turn, each with a uuid of its own; then a successful result. The
 * count of lines before the result (the init line included) is
 * $BENCH_INGEST_LINES, 100000 by default. The init line carries the agent's
 * CLOCK_REALTIME at its start, in "bench_exec_realtime_ns". */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char init_line[] =
        "{\"type\":\"system\",\"subtype\":\"init\",\"bench_exec_realtime_ns\":%s,\"cwd\":\"/"
        "tmp/makima-test-fake-api.PlPRnx/repo\",\"session_id\":\"776f4cc7-c2cc-434c-a"
        "34c-69f90ff8286a\",\"tools\":[\"Task\",\"Bash\",\"CronCreate\",\"CronDelete\",\"Cron"
        "List\",\"Edit\",\"EnterWorktree\",\"ExitWorktree\",\"NotebookEdit\",\"Read\",\"Repor"
        "tFindings\",\"ScheduleWakeup\",\"SendMessage\",\"Skill\",\"TaskCreate\",\"TaskGet\""
        ",\"TaskList\",\"TaskOutput\",\"TaskStop\",\"TaskUpdate\",\"WebFetch\",\"WebSearch\","
        "\"Workflow\",\"Write\"],\"mcp_servers\":[],\"model\":\"claude-opus-4-8[1m]\",\"perm"
        "issionMode\":\"bypassPermissions\",\"slash_commands\":[\"deep-research\",\"updat"
        "e-config\",\"verify\",\"debug\",\"code-review\",\"simplify\",\"batch\",\"fewer-permi"
        "ssion-prompts\",\"loop\",\"claude-api\",\"run\",\"run-skill-generator\",\"clear\",\""
        "compact\",\"config\",\"context\",\"heapdump\",\"init\",\"reload-skills\",\"review\",\""
        "security-review\",\"usage\",\"insights\",\"goal\",\"team-onboarding\"],\"apiKeySou"
        "rce\":\"ANTHROPIC_API_KEY\",\"claude_code_version\":\"2.1.197\",\"output_style\":"
        "\"default\",\"agents\":[\"claude\",\"Explore\",\"general-purpose\",\"Plan\",\"statusl"
        "ine-setup\"],\"skills\":[\"deep-research\",\"update-config\",\"verify\",\"debug\",\""
        "code-review\",\"simplify\",\"batch\",\"fewer-permission-prompts\",\"loop\",\"claud"
        "e-api\",\"run\",\"run-skill-generator\"],\"plugins\":[],\"analytics_disabled\":tr"
        "ue,\"product_feedback_disabled\":true,\"uuid\":\"%s\",\"memory_paths\":{\"auto\":\""
        "/tmp/makima-test-fake-api.PlPRnx/home/.claude/projects/-tmp-makima-test-"
        "fake-api-PlPRnx-repo/memory/\"},\"fast_mode_state\":\"off\"}";

static const char *const turn_lines[] = {
        /* assistant-text */
                "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_2\",\"type\":\"message\",\"role\""
                ":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"text\",\"text\":"
                "\"I will create hello.txt.\"}],\"stop_reason\":null,\"stop_sequence\":null,\"us"
                "age\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_creation_input_tokens\":"
                "0,\"cache_read_input_tokens\":0},\"context_management\":null},\"parent_tool_u"
                "se_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\""
                "%s\",\"request_id\":\"req_fake_2\"}",
        /* assistant-thinking */
                "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_6\",\"type\":\"message\",\"role\""
                ":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"thinking\",\"th"
                "inking\":\"The file exists and holds the greeting.\",\"signature\":\"ZmFrZQ==\""
                "}],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1200,"
                "\"output_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_read_input_toke"
                "ns\":0},\"context_management\":null},\"parent_tool_use_id\":null,\"session_id\""
                ":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"%s\",\"request_id\":\"req_fa"
                "ke_6\"}",
        /* assistant-tool-use-bash */
                "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_3\",\"type\":\"message\",\"role\""
                ":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id"
                "\":\"toolu_fake_3_0\",\"name\":\"Bash\",\"input\":{\"command\":\"ls && cat hello.txt"
                "\",\"description\":\"List files and show hello.txt\"}}],\"stop_reason\":null,\"s"
                "top_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_c"
                "reation_input_tokens\":0,\"cache_read_input_tokens\":0},\"context_management"
                "\":null},\"parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-"
                "69f90ff8286a\",\"uuid\":\"%s\",\"request_id\":\"req_fake_3\"}",
        /* user-tool-result-bash */
                "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu"
                "_fake_3_0\",\"type\":\"tool_result\",\"content\":\"hello.txt\\nhello from makima\""
                ",\"is_error\":false}]},\"parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2"
                "cc-434c-a34c-69f90ff8286a\",\"uuid\":\"%s\",\"timestamp\":\"2026-11-21T12:18:26."
                "813Z\",\"tool_use_result\":{\"stdout\":\"hello.txt\\nhello from makima\",\"stderr"
                "\":\"\",\"interrupted\":false,\"isImage\":false,\"noOutputExpected\":false}}",
        /* assistant-tool-use-read */
                "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_4\",\"type\":\"message\",\"role\""
                ":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id"
                "\":\"toolu_fake_4_0\",\"name\":\"Read\",\"input\":{\"file_path\":\"/tmp/makima-test-"
                "fake-api.PlPRnx/repo/hello.txt\"}}],\"stop_reason\":null,\"stop_sequence\":nu"
                "ll,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_creation_input_to"
                "kens\":0,\"cache_read_input_tokens\":0},\"context_management\":null},\"parent_"
                "tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"u"
                "uid\":\"%s\",\"request_id\":\"req_fake_4\"}",
        /* user-tool-result-read */
                "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu"
                "_fake_4_0\",\"type\":\"tool_result\",\"content\":\"1\\thello from makima\\n2\\t\"}]}"
                ",\"parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff"
                "8286a\",\"uuid\":\"%s\",\"timestamp\":\"2026-11-21T12:18:26.850Z\",\"tool_use_resu"
                "lt\":{\"type\":\"text\",\"file\":{\"filePath\":\"/tmp/makima-test-fake-api.PlPRnx/"
                "repo/hello.txt\",\"content\":\"hello from makima\\n\",\"numLines\":2,\"startLine\""
                ":1,\"totalLines\":2}}}",
        /* assistant-tool-use-edit */
                "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_5\",\"type\":\"message\",\"role\""
                ":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id"
                "\":\"toolu_fake_5_0\",\"name\":\"Edit\",\"input\":{\"replace_all\":false,\"file_path"
                "\":\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.txt\",\"old_string\":\"hello "
                "from makima\",\"new_string\":\"hello from makima, edited\"}}],\"stop_reason\":n"
                "ull,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"c"
                "ache_creation_input_tokens\":0,\"cache_read_input_tokens\":0},\"context_mana"
                "gement\":null},\"parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c"
                "-a34c-69f90ff8286a\",\"uuid\":\"%s\",\"request_id\":\"req_fake_5\"}",
        /* user-tool-result-edit */
                "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu"
                "_fake_5_0\",\"type\":\"tool_result\",\"content\":\"The file /tmp/makima-test-fak"
                "e-api.PlPRnx/repo/hello.txt has been updated successfully. (file state i"
                "s current in your context — no need to Read it back)\"}]},\"parent_tool_us"
                "e_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"%"
                "s\",\"timestamp\":\"2026-11-21T12:18:26.883Z\",\"tool_use_result\":{\"filePath\":"
                "\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.txt\",\"oldString\":\"hello fro"
                "m makima\",\"newString\":\"hello from makima, edited\",\"originalFile\":\"hello "
                "from makima\\n\",\"structuredPatch\":[{\"oldStart\":1,\"oldLines\":1,\"newStart\":"
                "1,\"newLines\":1,\"lines\":[\"-hello from makima\",\"+hello from makima, edited"
                "\"]}],\"userModified\":false,\"replaceAll\":false}}",
        /* assistant-tool-use-write */
                "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_2\",\"type\":\"message\",\"role\""
                ":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id"
                "\":\"toolu_fake_2_0\",\"name\":\"Write\",\"input\":{\"file_path\":\"/tmp/makima-test"
                "-fake-api.PlPRnx/repo/hello.txt\",\"content\":\"hello from makima\\n\"}}],\"sto"
                "p_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_t"
                "okens\":1,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0},\"c"
                "ontext_management\":null},\"parent_tool_use_id\":null,\"session_id\":\"776f4cc"
                "7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"%s\",\"request_id\":\"req_fake_2\"}",
        /* user-tool-result-write */
                "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu"
                "_fake_2_0\",\"type\":\"tool_result\",\"content\":\"File created successfully at:"
                " /tmp/makima-test-fake-api.PlPRnx/repo/hello.txt (file state is current "
                "in your context — no need to Read it back)\"}]},\"parent_tool_use_id\":null"
                ",\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"%s\",\"timest"
                "amp\":\"2026-11-21T12:18:26.692Z\",\"tool_use_result\":{\"type\":\"create\",\"file"
                "Path\":\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.txt\",\"content\":\"hello"
                " from makima\\n\",\"structuredPatch\":[],\"originalFile\":null,\"userModified\":"
                "false}}",
};

static const char result_line[] =
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"api_error_status\""
        ":null,\"duration_ms\":332,\"duration_api_ms\":159,\"ttft_ms\":86,\"ttft_stream_"
        "ms\":85,\"time_to_request_ms\":76,\"num_turns\":5,\"result\":\"Done: hello.txt h"
        "olds the greeting.\\nIt was written, listed, read and edited.\",\"stop_reas"
        "on\":\"end_turn\",\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"tota"
        "l_cost_usd\":0.007699999999999999,\"usage\":{\"input_tokens\":1240,\"cache_cre"
        "ation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":60,\"se"
        "rver_tool_use\":{\"web_search_requests\":0,\"web_fetch_requests\":0},\"service"
        "_tier\":\"standard\",\"cache_creation\":{\"ephemeral_1h_input_tokens\":0,\"ephem"
        "eral_5m_input_tokens\":0},\"inference_geo\":\"\",\"iterations\":[],\"speed\":\"sta"
        "ndard\"},\"modelUsage\":{\"claude-opus-4-8[1m]\":{\"inputTokens\":1240,\"outputT"
        "okens\":60,\"cacheReadInputTokens\":0,\"cacheCreationInputTokens\":0,\"webSear"
        "chRequests\":0,\"costUSD\":0.007699999999999999,\"contextWindow\":1000000,\"ma"
        "xOutputTokens\":64000}},\"permission_denials\":[],\"terminal_reason\":\"comple"
        "ted\",\"fast_mode_state\":\"off\",\"uuid\":\"%s\"}";

/* Prints a template with each "%s" replaced by the next of values. */
static void put_line(const char *template, const char *const *values) {
        for (const char *p = template, *m;; p = m + 2) {
                m = strstr(p, "%s");
                if (!m) {
                        fputs(p, stdout);
                        break;
                }
                fwrite(p, 1, (size_t) (m - p), stdout);
                fputs(*values++, stdout);
        }
        putchar('\n');
}

int main(void) {
        static char buf[1 << 20];
        const size_t n_turn = sizeof(turn_lines) / sizeof(turn_lines[0]);
        const char *e = getenv("BENCH_INGEST_LINES");
        unsigned long n = e ? strtoul(e, NULL, 10) : 100000;
        char start[32], uuid[48], *line = NULL;
        struct timespec ts;
        size_t size = 0;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        (void) snprintf(start, sizeof(start), "%llu",
                        (unsigned long long) ts.tv_sec * 1000000000ULL + (unsigned long long) ts.tv_nsec);
        (void) setvbuf(stdout, buf, _IOFBF, sizeof(buf));

        /* The user message with the prompt comes first, as for the CLI. */
        (void) getline(&line, &size, stdin);
        free(line);

        for (unsigned long i = 0; i <= n; i++) {
                (void) snprintf(uuid, sizeof(uuid), "6e6a6b00-0000-4000-8000-%012lx", i);
                if (i == 0)
                        put_line(init_line, (const char *const[]) { start, uuid });
                else if (i == n)
                        put_line(result_line, (const char *const[]) { uuid });
                else
                        put_line(turn_lines[(i - 1) % n_turn], (const char *const[]) { uuid });
        }
        return fflush(stdout) == 0 ? 0 : 1;
}
