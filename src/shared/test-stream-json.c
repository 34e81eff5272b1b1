/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* stream-json.c against lines the real Claude Code CLI (2.1.197) printed
 * while tests/test-fake-api.sh drove it (the same lines seed the fuzzer),
 * plus missing and mistyped fields, invalid JSON, huge lines, and the stdin
 * lines makima writes (byte for byte those the e2e test feeds the CLI). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream-json.h"
#include "tests.h"

#define REPO "/tmp/makima-test-fake-api.PlPRnx/repo"

/* system-init.jsonl */
static const char LINE_INIT[] =
        "{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":\"/tmp/makima-test-fake-api.PlPRnx/repo\",\"session"
        "_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"tools\":[\"Task\",\"Bash\",\"CronCreate\",\"CronDel"
        "ete\",\"CronList\",\"Edit\",\"EnterWorktree\",\"ExitWorktree\",\"NotebookEdit\",\"Read\",\"ReportFindi"
        "ngs\",\"ScheduleWakeup\",\"SendMessage\",\"Skill\",\"TaskCreate\",\"TaskGet\",\"TaskList\",\"TaskOutpu"
        "t\",\"TaskStop\",\"TaskUpdate\",\"WebFetch\",\"WebSearch\",\"Workflow\",\"Write\"],\"mcp_servers\":[],\""
        "model\":\"claude-opus-4-8[1m]\",\"permissionMode\":\"bypassPermissions\",\"slash_commands\":[\"dee"
        "p-research\",\"update-config\",\"verify\",\"debug\",\"code-review\",\"simplify\",\"batch\",\"fewer-per"
        "mission-prompts\",\"loop\",\"claude-api\",\"run\",\"run-skill-generator\",\"clear\",\"compact\",\"conf"
        "ig\",\"context\",\"heapdump\",\"init\",\"reload-skills\",\"review\",\"security-review\",\"usage\",\"insi"
        "ghts\",\"goal\",\"team-onboarding\"],\"apiKeySource\":\"ANTHROPIC_API_KEY\",\"claude_code_version\""
        ":\"2.1.197\",\"output_style\":\"default\",\"agents\":[\"claude\",\"Explore\",\"general-purpose\",\"Plan"
        "\",\"statusline-setup\"],\"skills\":[\"deep-research\",\"update-config\",\"verify\",\"debug\",\"code-r"
        "eview\",\"simplify\",\"batch\",\"fewer-permission-prompts\",\"loop\",\"claude-api\",\"run\",\"run-skil"
        "l-generator\"],\"plugins\":[],\"analytics_disabled\":true,\"product_feedback_disabled\":true,\"u"
        "uid\":\"6043c60a-7cae-45fb-b276-935cd2007d0d\",\"memory_paths\":{\"auto\":\"/tmp/makima-test-fak"
        "e-api.PlPRnx/home/.claude/projects/-tmp-makima-test-fake-api-PlPRnx-repo/memory/\"},\"fast"
        "_mode_state\":\"off\"}";

/* assistant-text.jsonl */
static const char LINE_ASSISTANT_TEXT[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_2\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"text\",\"text\":\"I will create hello.txt.\"}],\"st"
        "op_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache"
        "_creation_input_tokens\":0,\"cache_read_input_tokens\":0},\"context_management\":null},\"paren"
        "t_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"7ae7242e"
        "-960a-4cc9-aae6-b9f2f829f40f\",\"request_id\":\"req_fake_2\"}";

/* assistant-text-multiline.jsonl */
static const char LINE_ASSISTANT_MULTILINE[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_6\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"text\",\"text\":\"Done: hello.txt holds the greet"
        "ing.\\nIt was written, listed, read and edited.\"}],\"stop_reason\":null,\"stop_sequence\":nul"
        "l,\"usage\":{\"input_tokens\":1200,\"output_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_"
        "read_input_tokens\":0},\"context_management\":null},\"parent_tool_use_id\":null,\"session_id\":"
        "\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"0149b8bf-40f0-4fae-b826-a77e76b80b52\",\"re"
        "quest_id\":\"req_fake_6\"}";

/* assistant-tool-use-write.jsonl */
static const char LINE_TOOL_WRITE[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_2\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_fake_2_0\",\"name\":\"Write"
        "\",\"input\":{\"file_path\":\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.txt\",\"content\":\"hell"
        "o from makima\\n\"}}],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\""
        "output_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0},\"context_m"
        "anagement\":null},\"parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff"
        "8286a\",\"uuid\":\"5174f59c-96c1-40e3-99ad-934d20ec0dfe\",\"request_id\":\"req_fake_2\"}";

/* assistant-tool-use-bash.jsonl */
static const char LINE_TOOL_BASH[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_3\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_fake_3_0\",\"name\":\"Bash\""
        ",\"input\":{\"command\":\"ls && cat hello.txt\",\"description\":\"List files and show hello.txt\"}"
        "}],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,"
        "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0},\"context_management\":null},"
        "\"parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"cf"
        "26d29d-3dd5-4b23-969f-a4f76d65d6da\",\"request_id\":\"req_fake_3\"}";

/* assistant-tool-use-read.jsonl */
static const char LINE_TOOL_READ[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_4\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_fake_4_0\",\"name\":\"Read\""
        ",\"input\":{\"file_path\":\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.txt\"}}],\"stop_reason\""
        ":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_creation_"
        "input_tokens\":0,\"cache_read_input_tokens\":0},\"context_management\":null},\"parent_tool_use"
        "_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"70f3ce6b-e4b4-4b31"
        "-93a4-35d3a7c35ebe\",\"request_id\":\"req_fake_4\"}";

/* assistant-tool-use-edit.jsonl */
static const char LINE_TOOL_EDIT[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_5\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_fake_5_0\",\"name\":\"Edit\""
        ",\"input\":{\"replace_all\":false,\"file_path\":\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.t"
        "xt\",\"old_string\":\"hello from makima\",\"new_string\":\"hello from makima, edited\"}}],\"stop_r"
        "eason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_cre"
        "ation_input_tokens\":0,\"cache_read_input_tokens\":0},\"context_management\":null},\"parent_to"
        "ol_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"cfe4a86b-f48"
        "7-49e1-ae2c-40ff54e7934b\",\"request_id\":\"req_fake_5\"}";

/* assistant-thinking.jsonl */
static const char LINE_THINKING[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_6\",\"type\":\"message\",\"role\":\"assistant\",\"mo"
        "del\":\"claude-opus-4-8\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"The file exists and hol"
        "ds the greeting.\",\"signature\":\"ZmFrZQ==\"}],\"stop_reason\":null,\"stop_sequence\":null,\"usag"
        "e\":{\"input_tokens\":1200,\"output_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_read_in"
        "put_tokens\":0},\"context_management\":null},\"parent_tool_use_id\":null,\"session_id\":\"776f4c"
        "c7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"09fcaaad-00cf-4233-bac0-b5c8637b131f\",\"request_i"
        "d\":\"req_fake_6\"}";

/* user-tool-result-write.jsonl */
static const char LINE_RESULT_WRITE[] =
        "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu_fake_2_0\",\"type"
        "\":\"tool_result\",\"content\":\"File created successfully at: /tmp/makima-test-fake-api.PlPRn"
        "x/repo/hello.txt (file state is current in your context — no need to Read it back)\"}]},\""
        "parent_tool_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"fbc"
        "72d41-5f3e-4b37-a9d5-72baa0aa74c4\",\"timestamp\":\"2026-11-21T12:18:26.692Z\",\"tool_use_resu"
        "lt\":{\"type\":\"create\",\"filePath\":\"/tmp/makima-test-fake-api.PlPRnx/repo/hello.txt\",\"conte"
        "nt\":\"hello from makima\\n\",\"structuredPatch\":[],\"originalFile\":null,\"userModified\":false}"
        "}";

/* user-tool-result-bash.jsonl */
static const char LINE_RESULT_BASH[] =
        "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu_fake_3_0\",\"type"
        "\":\"tool_result\",\"content\":\"hello.txt\\nhello from makima\",\"is_error\":false}]},\"parent_too"
        "l_use_id\":null,\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286a\",\"uuid\":\"31d3fde7-2f58"
        "-42cc-848f-cf900716ef13\",\"timestamp\":\"2026-11-21T12:18:26.813Z\",\"tool_use_result\":{\"stdo"
        "ut\":\"hello.txt\\nhello from makima\",\"stderr\":\"\",\"interrupted\":false,\"isImage\":false,\"noOu"
        "tputExpected\":false}}";

/* user-tool-result-permission-error.jsonl */
static const char LINE_RESULT_DENIED[] =
        "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"content\":\"Tool"
        " permission request failed: Error: makima grants no permissions interactively\",\"is_error"
        "\":true,\"tool_use_id\":\"toolu_fake_2_0\"}]},\"parent_tool_use_id\":null,\"session_id\":\"0b5dff0"
        "a-9c1c-4fc0-86f5-66349f4b83cb\",\"uuid\":\"16622997-55b3-418d-9c49-7ff5ed15c83f\",\"timestamp\""
        ":\"2026-11-21T12:18:47.204Z\",\"tool_use_result\":\"Error: Tool permission request failed: Er"
        "ror: makima grants no permissions interactively\"}";

/* result-success.jsonl */
static const char LINE_RESULT_SUCCESS[] =
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"api_error_status\":null,\"duration_"
        "ms\":332,\"duration_api_ms\":159,\"ttft_ms\":86,\"ttft_stream_ms\":85,\"time_to_request_ms\":76,\""
        "num_turns\":5,\"result\":\"Done: hello.txt holds the greeting.\\nIt was written, listed, read"
        " and edited.\",\"stop_reason\":\"end_turn\",\"session_id\":\"776f4cc7-c2cc-434c-a34c-69f90ff8286"
        "a\",\"total_cost_usd\":0.007699999999999999,\"usage\":{\"input_tokens\":1240,\"cache_creation_in"
        "put_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":60,\"server_tool_use\":{\"web_sea"
        "rch_requests\":0,\"web_fetch_requests\":0},\"service_tier\":\"standard\",\"cache_creation\":{\"eph"
        "emeral_1h_input_tokens\":0,\"ephemeral_5m_input_tokens\":0},\"inference_geo\":\"\",\"iterations\""
        ":[],\"speed\":\"standard\"},\"modelUsage\":{\"claude-opus-4-8[1m]\":{\"inputTokens\":1240,\"outputT"
        "okens\":60,\"cacheReadInputTokens\":0,\"cacheCreationInputTokens\":0,\"webSearchRequests\":0,\"c"
        "ostUSD\":0.007699999999999999,\"contextWindow\":1000000,\"maxOutputTokens\":64000}},\"permissi"
        "on_denials\":[],\"terminal_reason\":\"completed\",\"fast_mode_state\":\"off\",\"uuid\":\"6ed795cd-ec"
        "99-4264-87f9-276396915d0c\"}";

/* result-error-401.jsonl */
static const char LINE_RESULT_401[] =
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"api_error_status\":401,\"duration_ms"
        "\":777,\"duration_api_ms\":0,\"num_turns\":1,\"result\":\"Invalid API key · Fix external API key"
        "\",\"stop_reason\":\"stop_sequence\",\"session_id\":\"7887b1e7-e399-4734-87f1-6c3189175301\",\"tot"
        "al_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_inp"
        "ut_tokens\":0,\"output_tokens\":0,\"server_tool_use\":{\"web_search_requests\":0,\"web_fetch_req"
        "uests\":0},\"service_tier\":\"standard\",\"cache_creation\":{\"ephemeral_1h_input_tokens\":0,\"eph"
        "emeral_5m_input_tokens\":0},\"inference_geo\":\"\",\"iterations\":[],\"speed\":\"standard\"},\"model"
        "Usage\":{},\"permission_denials\":[],\"terminal_reason\":\"completed\",\"fast_mode_state\":\"off\","
        "\"uuid\":\"927766fa-97d4-4642-a77b-e7afae831bee\"}";

/* assistant-error-authentication-failed.jsonl */
static const char LINE_ASSISTANT_401[] =
        "{\"type\":\"assistant\",\"message\":{\"id\":\"f19028fa-9858-4a59-a75d-5ed4adccd55a\",\"container\":n"
        "ull,\"model\":\"<synthetic>\",\"role\":\"assistant\",\"stop_details\":null,\"stop_reason\":\"stop_seq"
        "uence\",\"stop_sequence\":\"\",\"type\":\"message\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0,\""
        "cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"server_tool_use\":{\"web_searc"
        "h_requests\":0,\"web_fetch_requests\":0},\"service_tier\":null,\"cache_creation\":{\"ephemeral_1"
        "h_input_tokens\":0,\"ephemeral_5m_input_tokens\":0},\"inference_geo\":null,\"iterations\":null,"
        "\"speed\":null},\"content\":[{\"type\":\"text\",\"text\":\"Invalid API key · Fix external API key\"}"
        "],\"context_management\":null},\"parent_tool_use_id\":null,\"session_id\":\"7887b1e7-e399-4734-"
        "87f1-6c3189175301\",\"uuid\":\"20423dec-f1e5-4d63-997b-81adeafe4bf4\",\"error\":\"authentication"
        "_failed\",\"request_id\":\"req_fake_3\"}";

/* system-api-retry-429.jsonl */
static const char LINE_API_RETRY_429[] =
        "{\"type\":\"system\",\"subtype\":\"api_retry\",\"attempt\":1,\"max_retries\":10,\"retry_delay_ms\":100"
        "0,\"error_status\":429,\"error\":\"rate_limit\",\"session_id\":\"5592fc02-cb38-4f5a-bfef-ab6452bf"
        "1ce2\",\"uuid\":\"bae1a49f-61ca-4d08-8c3c-33adb1c5e5bd\"}";

/* control-request-can-use-tool.jsonl */
static const char LINE_CONTROL_REQUEST[] =
        "{\"type\":\"control_request\",\"request_id\":\"5b6f304c-9760-4a50-9f0f-6bd31d5a6ae7\",\"request\":"
        "{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\",\"display_name\":\"Bash\",\"input\":{\"command\":\"e"
        "cho denied > denied.txt\",\"description\":\"Write denied.txt\"},\"description\":\"Write denied.t"
        "xt\",\"permission_suggestions\":[{\"type\":\"addRules\",\"rules\":[{\"toolName\":\"Bash\",\"ruleConten"
        "t\":\"echo denied *\"}],\"behavior\":\"allow\",\"destination\":\"localSettings\"},{\"type\":\"addDirec"
        "tories\",\"directories\":[\"/tmp/makima-test-fake-api.PlPRnx/repo\"],\"destination\":\"session\"}"
        "],\"blocked_path\":\"/tmp/makima-test-fake-api.PlPRnx/repo/denied.txt\",\"tool_use_id\":\"toolu"
        "_fake_2_0\"}}";

/* control-response-interrupt.jsonl */
static const char LINE_CONTROL_RESPONSE[] =
        "{\"type\":\"control_response\",\"response\":{\"subtype\":\"success\",\"request_id\":\"interrupt-1\"}}";

/* user-text-interrupted.jsonl */
static const char LINE_USER_INTERRUPTED[] =
        "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"[Request inter"
        "rupted by user]\"}]},\"parent_tool_use_id\":null,\"session_id\":\"a26f5671-f863-4296-96a7-abce"
        "ec01903c\",\"uuid\":\"50d786ed-11b1-4feb-b997-f98c72956113\",\"timestamp\":\"2026-11-21T12:18:44"
        ".249Z\"}";

/* result-error-during-execution.jsonl */
static const char LINE_RESULT_INTERRUPTED[] =
        "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"duration_ms\":389,\"duration_api_ms\":"
        "0,\"is_error\":true,\"num_turns\":2,\"stop_reason\":null,\"session_id\":\"a26f5671-f863-4296-96a7"
        "-abceec01903c\",\"total_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"cache_creation_input_tokens"
        "\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0,\"server_tool_use\":{\"web_search_request"
        "s\":0,\"web_fetch_requests\":0},\"service_tier\":\"standard\",\"cache_creation\":{\"ephemeral_1h_i"
        "nput_tokens\":0,\"ephemeral_5m_input_tokens\":0},\"inference_geo\":\"\",\"iterations\":[],\"speed\""
        ":\"standard\"},\"modelUsage\":{},\"permission_denials\":[],\"terminal_reason\":\"aborted_streamin"
        "g\",\"fast_mode_state\":\"off\",\"uuid\":\"63aa4fba-a3cd-4bf6-aaf2-09e52bcbc342\",\"errors\":[\"[ede"
        "_diagnostic] result_type=user last_content_type=n/a stop_reason=null\"]}";

/* result-error-max-turns.jsonl */
static const char LINE_RESULT_MAX_TURNS[] =
        "{\"type\":\"result\",\"subtype\":\"error_max_turns\",\"duration_ms\":270,\"duration_api_ms\":95,\"is_"
        "error\":true,\"num_turns\":2,\"stop_reason\":\"tool_use\",\"session_id\":\"13ada46c-f40f-4854-be0f"
        "-22aae77d02f5\",\"total_cost_usd\":0.000175,\"usage\":{\"input_tokens\":10,\"cache_creation_inpu"
        "t_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":5,\"server_tool_use\":{\"web_search"
        "_requests\":0,\"web_fetch_requests\":0},\"service_tier\":\"standard\",\"cache_creation\":{\"epheme"
        "ral_1h_input_tokens\":0,\"ephemeral_5m_input_tokens\":0},\"inference_geo\":\"\",\"iterations\":[]"
        ",\"speed\":\"standard\"},\"modelUsage\":{\"claude-opus-4-8[1m]\":{\"inputTokens\":10,\"outputTokens"
        "\":5,\"cacheReadInputTokens\":0,\"cacheCreationInputTokens\":0,\"webSearchRequests\":0,\"costUSD"
        "\":0.000175,\"contextWindow\":1000000,\"maxOutputTokens\":64000}},\"permission_denials\":[],\"te"
        "rminal_reason\":\"max_turns\",\"fast_mode_state\":\"off\",\"uuid\":\"1747bfd1-3c41-4d8c-adb5-f94c5"
        "3c0ace0\",\"errors\":[\"Reached maximum number of turns (1)\"]}";

/* stream-event-message-start.jsonl */
static const char LINE_STREAM_EVENT[] =
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake_2\",\"typ"
        "e\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[],\"stop_reason\":nul"
        "l,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_creation_inpu"
        "t_tokens\":0,\"cache_read_input_tokens\":0}}},\"session_id\":\"a00f15d0-5ac4-4e57-affd-ed34ed3"
        "ab89a\",\"parent_tool_use_id\":null,\"uuid\":\"0230a7e8-4908-4772-9f8f-ef2f1a370cc2\",\"ttft_ms\""
        ":46}";

/* synthesized-rate-limit-event-rejected.jsonl */
static const char LINE_RATE_LIMIT[] =
        "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":1795266000,"
        "\"rateLimitType\":\"five_hour\",\"overageStatus\":\"rejected\",\"isUsingOverage\":false},\"uuid\":\"6"
        "c1a3bb3-3b47-4d4c-9a43-0e0f3f9f8a11\",\"session_id\":\"a26f5671-f863-4296-96a7-abceec01903c\""
        "}";

/* system-status.jsonl */
static const char LINE_SYSTEM_STATUS[] =
        "{\"type\":\"system\",\"subtype\":\"status\",\"status\":\"requesting\",\"uuid\":\"a966df54-7e03-44dc-a36"
        "8-1edac8fc4ad1\",\"session_id\":\"a00f15d0-5ac4-4e57-affd-ed34ed3ab89a\"}";

static StreamEvent *parse_cwd(const char *line, const char *cwd) {
        StreamEvent *e = NULL;

        assert_se(stream_json_parse_line_full(line, strlen(line), cwd, &e) == 0);
        assert_se(e && e->json);
        return e;
}

static StreamEvent *parse(const char *line) {
        return parse_cwd(line, NULL);
}

/* Parses line and checks its summary. */
static void check_summary(const char *line, const char *expected) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(line);
        _cleanup_free_ char *s = NULL;

        assert_se(stream_event_summary(e, &s) == 0);
        assert_streq(s, expected);
}

static void test_type_strings(void) {
        for (StreamEventType t = 0; t < _STREAM_EVENT_TYPE_MAX; t++)
                assert_se(stream_event_type_from_string(stream_event_type_to_string(t)) == t);
        assert_streq(stream_event_type_to_string(STREAM_EVENT_RATE_LIMIT), "rate_limit");
        assert_se(stream_event_type_to_string(_STREAM_EVENT_TYPE_MAX) == NULL);
        assert_se(stream_event_type_to_string(_STREAM_EVENT_TYPE_INVALID) == NULL);
        assert_se(stream_event_type_from_string("system") == _STREAM_EVENT_TYPE_INVALID);
        assert_se(stream_event_type_from_string(NULL) == _STREAM_EVENT_TYPE_INVALID);
}

static void test_init(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_INIT);

        assert_se(e->type == STREAM_EVENT_SYSTEM_INIT);
        assert_streq(e->type_string, "system");
        assert_streq(e->subtype, "init");
        assert_streq(e->session_id, "776f4cc7-c2cc-434c-a34c-69f90ff8286a");
        assert_streq(e->model, "claude-opus-4-8[1m]");
        assert_streq(e->cwd, REPO);
        assert_streq(e->permission_mode, "bypassPermissions");
        assert_streq(e->claude_code_version, "2.1.197");
        assert_se(json_object_is_type(e->json, json_type_object));
        check_summary(LINE_INIT, "init session 776f4cc7-c2cc-434c-a34c-69f90ff8286a model claude-opus-4-8[1m]");
}

static void test_assistant_text(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_ASSISTANT_TEXT);
        _cleanup_(stream_event_freep) StreamEvent *m = parse(LINE_ASSISTANT_MULTILINE);

        assert_se(e->type == STREAM_EVENT_ASSISTANT);
        assert_streq(e->text, "I will create hello.txt.");
        assert_se(!e->thinking && e->n_tool_uses == 0 && !e->error && !e->parent_tool_use_id);
        assert_streq(e->model, "claude-opus-4-8");
        assert_streq(e->session_id, "776f4cc7-c2cc-434c-a34c-69f90ff8286a");
        check_summary(LINE_ASSISTANT_TEXT, "I will create hello.txt.");

        /* The whole text is kept (the completion gate lives in it); the summary is its first line. */
        assert_streq(m->text, "Done: hello.txt holds the greeting.\nIt was written, listed, read and edited.");
        check_summary(LINE_ASSISTANT_MULTILINE, "Done: hello.txt holds the greeting.…");
}

static void test_tool_uses(void) {
        _cleanup_(stream_event_freep) StreamEvent *w = parse(LINE_TOOL_WRITE), *b = parse(LINE_TOOL_BASH),
                                                  *r = parse_cwd(LINE_TOOL_READ, REPO),
                                                  *ed = parse_cwd(LINE_TOOL_EDIT, REPO "/");

        assert_se(w->type == STREAM_EVENT_ASSISTANT && w->n_tool_uses == 1 && !w->text);
        assert_streq(w->tool_uses[0].id, "toolu_fake_2_0");
        assert_streq(w->tool_uses[0].name, "Write");
        assert_streq(w->tool_uses[0].input,
                     "{\"file_path\":\"" REPO "/hello.txt\",\"content\":\"hello from makima\\n\"}");
        assert_streq(w->tool_uses[0].summary, "Write hello.txt");
        check_summary(LINE_TOOL_WRITE, "tool Write hello.txt");

        assert_streq(b->tool_uses[0].name, "Bash");
        assert_streq(b->tool_uses[0].summary, "Bash ls && cat hello.txt");
        check_summary(LINE_TOOL_BASH, "tool Bash ls && cat hello.txt");

        assert_streq(r->tool_uses[0].summary, "Read hello.txt");
        assert_streq(ed->tool_uses[0].summary, "Edit hello.txt");
        assert_se(strstr(ed->tool_uses[0].input, "\"new_string\":\"hello from makima, edited\""));
}

static void test_tool_summaries(void) {
        static const struct {
                const char *line, *cwd, *summary;
        } cases[] = {
                /* below the cwd: relative path; elsewhere or without a cwd: basename */
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Edit\","
                  "\"input\":{\"file_path\":\"/w/repo/src/x.c\"}}]}}", "/w/repo", "tool Edit src/x.c" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Edit\","
                  "\"input\":{\"file_path\":\"/w/repo/src/x.c\"}}]}}", NULL, "tool Edit x.c" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Read\","
                  "\"input\":{\"file_path\":\"/w/repository/a.c\"}}]}}", "/w/repo", "tool Read a.c" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Read\","
                  "\"input\":{\"file_path\":\"/w/repo/\"}}]}}", "/w/repo", "tool Read /w/repo/" },
                /* a command's first line, cut at 80 bytes */
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Bash\","
                  "\"input\":{\"command\":\"  make -C build\\nmake install\"}}]}}", NULL, "tool Bash make -C build…" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Bash\","
                  "\"input\":{\"command\":\"echo 0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789\"}}]}}", NULL,
                  "tool Bash echo 012345678901234567890123456789012345678901234567890123456789012345678901234…" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Grep\","
                  "\"input\":{\"pattern\":\"TODO\",\"path\":\"/w/repo/src\"}}]}}", "/w/repo", "tool Grep TODO" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Glob\","
                  "\"input\":{\"pattern\":\"**/*.c\"}}]}}", NULL, "tool Glob **/*.c" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Task\","
                  "\"input\":{\"description\":\"Find callers\",\"prompt\":\"...\"}}]}}", NULL, "tool Task Find callers" },
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"TodoWrite\","
                  "\"input\":{\"todos\":[]}}]}}", NULL, "tool TodoWrite" },
                /* two calls in one message, and text before them */
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"Two at once.\"},"
                  "{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"Read\",\"input\":{\"file_path\":\"/r/a\"}},"
                  "{\"type\":\"tool_use\",\"id\":\"b\",\"name\":\"Read\",\"input\":{\"file_path\":\"/r/b\"}}]}}", "/r",
                  "Two at once.; tool Read a; tool Read b" },
                /* no name, no input */
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\"}]}}", NULL, "tool ?" },
                /* control characters never reach the journal line */
                { "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"name\":\"B\\u0007x\","
                  "\"input\":{\"command\":\"a\\tb\\rc\"}}]}}", NULL, "tool B x a b c" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(stream_event_freep) StreamEvent *e = parse_cwd(cases[i].line, cases[i].cwd);
                _cleanup_free_ char *s = NULL;

                assert_se(stream_event_summary(e, &s) == 0);
                if (!streq(s, cases[i].summary)) {
                        fprintf(stderr, "case %zu: \"%s\" != \"%s\"\n", i, s, cases[i].summary);
                        abort();
                }
        }
}

static void test_tool_use_missing_input(void) {
        _cleanup_(stream_event_freep) StreamEvent *e =
                parse("{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\",\"id\":7}]}}");

        assert_se(e->n_tool_uses == 1);
        assert_se(!e->tool_uses[0].id && !e->tool_uses[0].name);
        assert_streq(e->tool_uses[0].input, "{}");
}

static void test_thinking(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_THINKING);

        assert_se(e->type == STREAM_EVENT_ASSISTANT && !e->text);
        assert_streq(e->thinking, "The file exists and holds the greeting.");
        check_summary(LINE_THINKING, "thinking The file exists and holds the greeting.");
}

static void test_tool_results(void) {
        _cleanup_(stream_event_freep) StreamEvent *w = parse(LINE_RESULT_WRITE), *b = parse(LINE_RESULT_BASH),
                                                  *d = parse(LINE_RESULT_DENIED);

        assert_se(w->type == STREAM_EVENT_USER && w->n_tool_results == 1 && w->n_tool_uses == 0);
        assert_streq(w->tool_results[0].tool_use_id, "toolu_fake_2_0");
        assert_se(!w->tool_results[0].is_error);
        assert_se(startswith(w->tool_results[0].content, "File created successfully at: " REPO "/hello.txt"));
        check_summary(LINE_RESULT_WRITE, "tool_result ok");

        assert_streq(b->tool_results[0].content, "hello.txt\nhello from makima");
        assert_se(!b->tool_results[0].is_error);

        assert_se(d->tool_results[0].is_error);
        check_summary(LINE_RESULT_DENIED,
                      "tool_result error: Tool permission request failed: Error: makima grants no permissions interactively");
}

static void test_tool_result_blocks(void) {
        static const char line[] =
                "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                "\"tool_use_id\":\"x\",\"is_error\":true,\"content\":[{\"type\":\"text\",\"text\":\"first\"},"
                "{\"type\":\"image\",\"source\":{}},{\"type\":\"text\",\"text\":\"second\"}]},"
                "{\"type\":\"tool_result\",\"tool_use_id\":\"y\"}]}}";
        _cleanup_(stream_event_freep) StreamEvent *e = parse(line);

        assert_se(e->n_tool_results == 2);
        assert_streq(e->tool_results[0].content, "first\nsecond");
        assert_se(e->tool_results[0].is_error);
        assert_se(!e->tool_results[1].content && !e->tool_results[1].is_error);
        check_summary(line, "tool_result error: first…; tool_result ok");
}

static void test_results(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_RESULT_SUCCESS), *a = parse(LINE_RESULT_401);

        assert_se(e->type == STREAM_EVENT_RESULT);
        assert_streq(e->subtype, "success");
        assert_se(!e->is_error);
        assert_streq(e->result, "Done: hello.txt holds the greeting.\nIt was written, listed, read and edited.");
        assert_se(e->num_turns == 5);
        assert_se(e->duration_ms == 332);
        assert_se(e->total_cost_usd > 0.00769 && e->total_cost_usd < 0.00771);
        assert_se(e->api_error_status == 0);
        assert_se(e->usage.input_tokens == 1240 && e->usage.output_tokens == 60);
        assert_se(e->usage.cache_read_input_tokens == 0 && e->usage.cache_creation_input_tokens == 0);
        assert_streq(e->session_id, "776f4cc7-c2cc-434c-a34c-69f90ff8286a");
        assert_streq(e->terminal_reason, "completed");
        assert_streq(e->stop_reason, "end_turn");
        assert_se(e->n_permission_denials == 0);
        check_summary(LINE_RESULT_SUCCESS, "result success $0.0077 5 turns");

        /* An API failure is "success" with is_error: the summary says error. */
        assert_streq(a->subtype, "success");
        assert_se(a->is_error && a->api_error_status == 401 && a->num_turns == 1);
        assert_se(a->total_cost_usd == 0);
        check_summary(LINE_RESULT_401, "result error (HTTP 401) $0.0000 1 turn: Invalid API key · Fix external API key");

        check_summary(LINE_RESULT_INTERRUPTED, "result error_during_execution $0.0000 2 turns");
        check_summary(LINE_RESULT_MAX_TURNS, "result error_max_turns $0.0002 2 turns");
}

static void test_assistant_error(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_ASSISTANT_401);

        assert_se(e->type == STREAM_EVENT_ASSISTANT);
        assert_streq(e->error, "authentication_failed");
        assert_streq(e->model, "<synthetic>");
        check_summary(LINE_ASSISTANT_401, "error authentication_failed: Invalid API key · Fix external API key");
}

static void test_system_other(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_API_RETRY_429);

        assert_se(e->type == STREAM_EVENT_SYSTEM_OTHER);
        assert_streq(e->subtype, "api_retry");
        assert_se(e->retry_attempt == 1 && e->retry_max == 10 && e->error_status == 429);
        assert_streq(e->error, "rate_limit");
        check_summary(LINE_API_RETRY_429, "system api_retry attempt 1/10 status 429 rate_limit");
        check_summary(LINE_SYSTEM_STATUS, "system status");
}

static void test_rate_limit(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_RATE_LIMIT);

        assert_se(e->type == STREAM_EVENT_RATE_LIMIT);
        assert_streq(e->status, "rejected");
        assert_se(e->resets_at == 1795266000);
        assert_streq(e->rate_limit_type, "five_hour");
        check_summary(LINE_RATE_LIMIT, "rate_limit rejected until 2026-11-21T13:00:00Z");
        check_summary("{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"allowed\"}}", "rate_limit allowed");
        check_summary("{\"type\":\"rate_limit_event\"}", "rate_limit n/a");
}

static void test_control(void) {
        _cleanup_(stream_event_freep) StreamEvent *q = parse(LINE_CONTROL_REQUEST), *r = parse(LINE_CONTROL_RESPONSE);

        assert_se(q->type == STREAM_EVENT_CONTROL_REQUEST);
        assert_streq(q->request_id, "5b6f304c-9760-4a50-9f0f-6bd31d5a6ae7");
        assert_streq(q->subtype, "can_use_tool");
        assert_streq(q->tool_name, "Bash");
        check_summary(LINE_CONTROL_REQUEST, "control_request can_use_tool 5b6f304c-9760-4a50-9f0f-6bd31d5a6ae7 tool Bash");

        assert_se(r->type == STREAM_EVENT_CONTROL_RESPONSE);
        assert_streq(r->request_id, "interrupt-1");
        assert_streq(r->subtype, "success");
        check_summary(LINE_CONTROL_RESPONSE, "control_response success interrupt-1");
        check_summary("{\"type\":\"control_response\",\"response\":{\"subtype\":\"error\",\"request_id\":\"r\","
                      "\"error\":\"no such request\"}}",
                      "control_response error r: no such request");
}

static void test_user_text(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_USER_INTERRUPTED);
        _cleanup_(stream_event_freep) StreamEvent *s =
                parse("{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"plain string\"}}");

        assert_se(e->type == STREAM_EVENT_USER && e->n_tool_results == 0);
        assert_streq(e->text, "[Request interrupted by user]");
        check_summary(LINE_USER_INTERRUPTED, "user [Request interrupted by user]");
        assert_streq(s->text, "plain string");
}

static void test_stream_event(void) {
        _cleanup_(stream_event_freep) StreamEvent *e = parse(LINE_STREAM_EVENT);

        assert_se(e->type == STREAM_EVENT_STREAM_EVENT);
        assert_streq(e->subtype, "message_start");
        check_summary(LINE_STREAM_EVENT, "stream_event message_start");
}

static void test_unknown_and_missing(void) {
        _cleanup_(stream_event_freep) StreamEvent *u = parse("{\"type\":\"future_thing\",\"subtype\":\"x\"}");
        _cleanup_(stream_event_freep) StreamEvent *n = parse("{}");
        _cleanup_(stream_event_freep) StreamEvent *r = parse("{\"type\":\"result\"}");
        _cleanup_(stream_event_freep) StreamEvent *bad = parse(
                "{\"type\":\"result\",\"subtype\":7,\"session_id\":[],\"is_error\":\"yes\",\"num_turns\":-3,"
                "\"total_cost_usd\":\"much\",\"duration_ms\":1e300,\"api_error_status\":null,\"usage\":[1],"
                "\"permission_denials\":{}}");
        _cleanup_(stream_event_freep) StreamEvent *s = parse("{\"type\":\"system\",\"subtype\":{\"a\":1}}");
        _cleanup_(stream_event_freep) StreamEvent *a = parse("{\"type\":\"assistant\",\"message\":\"text\"}");
        _cleanup_(stream_event_freep) StreamEvent *t = parse("{\"type\":42}");

        assert_se(u->type == STREAM_EVENT_UNKNOWN);
        assert_streq(u->type_string, "future_thing");
        check_summary("{\"type\":\"future_thing\",\"subtype\":\"x\"}", "unknown future_thing x");
        assert_se(n->type == STREAM_EVENT_UNKNOWN && !n->type_string);
        check_summary("{}", "unknown");
        assert_se(t->type == STREAM_EVENT_UNKNOWN && !t->type_string);

        assert_se(r->type == STREAM_EVENT_RESULT && !r->subtype && !r->is_error && !r->result && r->num_turns == 0);
        check_summary("{\"type\":\"result\"}", "result n/a $0.0000 0 turns");

        assert_se(bad->type == STREAM_EVENT_RESULT);
        assert_se(!bad->subtype && !bad->session_id && !bad->is_error);
        assert_se(bad->num_turns == 0 && bad->total_cost_usd == 0 && bad->duration_ms == UINT64_MAX);
        assert_se(bad->api_error_status == 0 && bad->usage.input_tokens == 0 && bad->n_permission_denials == 0);

        assert_se(s->type == STREAM_EVENT_SYSTEM_OTHER && !s->subtype);
        check_summary("{\"type\":\"system\",\"subtype\":{\"a\":1}}", "system n/a");

        assert_se(a->type == STREAM_EVENT_ASSISTANT && !a->text && a->n_tool_uses == 0);
        check_summary("{\"type\":\"assistant\",\"message\":\"text\"}", "assistant");

        /* Empty strings name nothing, but every summary names its kind (found by the fuzzer). */
        check_summary("{\"type\":\"stream_event\",\"event\":{\"type\":\"\"}}", "stream_event n/a");
        check_summary("{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"\",\"model\":\" \"}",
                      "init session n/a model ");
        check_summary("{\"type\":\"control_request\",\"request_id\":\"\",\"request\":{}}", "control_request n/a n/a");
        check_summary("{\"type\":\"\",\"subtype\":\"\"}", "unknown");
        check_summary("{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"\"}]}}",
                      "assistant");
}

static void test_invalid(void) {
        static const char *const bad[] = {
                "", " ", "\n", "{", "not json", "[1,2]", "42", "\"a string\"", "null", "{} {}", "{}x",
                "{\"type\":\"user\"", "{\"type\":\"user\",}", "{'type':'user'}",
        };
        StreamEvent *e = (StreamEvent *) 0x1;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_se(stream_json_parse_line(bad[i], strlen(bad[i]), &e) == -EBADMSG);
        assert_se(e == (StreamEvent *) 0x1); /* untouched on failure */

        /* A NUL inside the line is not JSON either, even before a valid end. */
        assert_se(stream_json_parse_line("{}\0{}", 5, &e) == -EBADMSG);
        assert_se(stream_json_parse_line("{\"type\":\"us\0er\"}", 16, &e) == -EBADMSG);
        /* Only len bytes count: a valid prefix is a valid line. */
        assert_se(stream_json_parse_line("{}garbage", 2, &e) == 0);
        e = stream_event_free(e);
        assert_se(stream_json_parse_line(NULL, 0, &e) == -EBADMSG);
        assert_se(stream_json_parse_line(NULL, 3, &e) == -EINVAL);

        /* The line terminator is part of what a reader hands over. */
        assert_se(stream_json_parse_line("{\"type\":\"user\"}\r\n", 17, &e) == 0);
        assert_se(e->type == STREAM_EVENT_USER);
        e = stream_event_free(e);
        assert_se(!stream_event_free(NULL));
        assert_se(stream_event_summary(NULL, (char **) &e) == -EINVAL);
}

static char *repeat(const char *s, size_t n) {
        size_t l = strlen(s);
        char *buf = malloc(l * n + 1);

        assert_se(buf);
        for (size_t i = 0; i < n; i++)
                memcpy(buf + i * l, s, l);
        buf[l * n] = '\0';
        return buf;
}

static void test_huge(void) {
        _cleanup_free_ char *text = repeat("é", 5 * 1024 * 1024), *line = NULL, *result = NULL, *rline = NULL,
                            *s = NULL, *deep = NULL, *deeper = NULL;
        _cleanup_(stream_event_freep) StreamEvent *e = NULL, *r = NULL, *d = NULL;
        StreamEvent *x = NULL;
        size_t l;

        /* 10 MB of text in one assistant message: kept whole, summarised short. */
        assert_se(asprintf(&line, "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}}\n",
                           text) > 0);
        assert_se(stream_json_parse_line(line, strlen(line), &e) == 0);
        assert_se(strlen(e->text) == strlen(text));
        assert_se(stream_event_summary(e, &s) == 0);
        l = strlen(s);
        /* 200 bytes cut back to a whole "é" (2 bytes each), then "…" */
        assert_se(l == STREAM_JSON_SUMMARY_TEXT_MAX + strlen("…"));
        assert_se(streq(s + l - strlen("…"), "…"));
        assert_se(strneq(s, "éé", 4) && strneq(s + l - strlen("…") - 2, "é", 2));

        /* A 10 MB tool result is cut to STREAM_JSON_TOOL_RESULT_MAX without splitting a character. */
        result = repeat("x€", 1024 * 1024 * 5 / 2);
        assert_se(asprintf(&rline, "{\"type\":\"user\",\"message\":{\"content\":[{\"type\":\"tool_result\","
                                   "\"tool_use_id\":\"t\",\"content\":\"%s\"}]}}", result) > 0);
        assert_se(stream_json_parse_line(rline, strlen(rline), &r) == 0);
        l = strlen(r->tool_results[0].content);
        assert_se(l <= STREAM_JSON_TOOL_RESULT_MAX && l > STREAM_JSON_TOOL_RESULT_MAX - 4);
        assert_se(strneq(r->tool_results[0].content + l - 3, "€", 3) || r->tool_results[0].content[l - 1] == 'x');

        /* Tool inputs nest deeper than json-c's default depth of 32. */
        {
                _cleanup_free_ char *open = repeat("[", 200), *close = repeat("]", 200),
                                    *open2 = repeat("[", 300), *close2 = repeat("]", 300);
                assert_se(asprintf(&deep, "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"tool_use\","
                                          "\"name\":\"X\",\"input\":{\"a\":%s%s}}]}}", open, close) > 0);
                assert_se(asprintf(&deeper, "{\"a\":%s%s}", open2, close2) > 0);
        }
        assert_se(stream_json_parse_line(deep, strlen(deep), &d) == 0);
        assert_se(d->n_tool_uses == 1 && strlen(d->tool_uses[0].input) == 200 * 2 + 6);
        assert_se(stream_json_parse_line(deeper, strlen(deeper), &x) == -EBADMSG);
}

static void test_writers(void) {
        _cleanup_free_ char *u = NULL, *multi = NULL, *i = NULL, *c = NULL, *c2 = NULL;
        _cleanup_(stream_event_freep) StreamEvent *e = NULL;
        char *x = (char *) 0x1;

        /* Byte for byte the lines tests/test-fake-api.sh gives the real CLI. */
        assert_se(stream_json_user_message("Answer slowly.", &u) == 0);
        assert_streq(u, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"Answer slowly.\"}}\n");
        assert_se(stream_json_interrupt_request("interrupt-1", &i) == 0);
        assert_streq(i, "{\"type\":\"control_request\",\"request_id\":\"interrupt-1\",\"request\":{\"subtype\":\"interrupt\"}}\n");
        assert_se(stream_json_control_error_response("5b6f304c-9760-4a50-9f0f-6bd31d5a6ae7",
                                                     "makima grants no permissions interactively", &c) == 0);
        assert_streq(c, "{\"type\":\"control_response\",\"response\":{\"subtype\":\"error\","
                        "\"request_id\":\"5b6f304c-9760-4a50-9f0f-6bd31d5a6ae7\","
                        "\"error\":\"makima grants no permissions interactively\"}}\n");
        assert_se(stream_json_control_error_response("r", NULL, &c2) == 0);
        assert_se(strstr(c2, "\"error\":\"not supported\""));

        /* A plan with newlines, quotes and paths is still one line, and reads back. */
        assert_se(stream_json_user_message("Fix src/x.c:\n\"quote\"\ttab\n<COMPLETION_GATE>", &multi) == 0);
        assert_se(strchr(multi, '\n') == multi + strlen(multi) - 1);
        assert_se(strstr(multi, "src/x.c"));
        assert_se(stream_json_parse_line(multi, strlen(multi), &e) == 0);
        assert_se(e->type == STREAM_EVENT_USER);
        assert_streq(e->text, "Fix src/x.c:\n\"quote\"\ttab\n<COMPLETION_GATE>");

        assert_se(stream_json_user_message(NULL, &x) == -EINVAL);
        assert_se(stream_json_interrupt_request("", &x) == -EINVAL);
        assert_se(stream_json_interrupt_request(NULL, &x) == -EINVAL);
        assert_se(stream_json_control_error_response(NULL, "m", &x) == -EINVAL);
        assert_se(x == (char *) 0x1);
}

int main(void) {
        test_type_strings();
        test_init();
        test_assistant_text();
        test_tool_uses();
        test_tool_summaries();
        test_tool_use_missing_input();
        test_thinking();
        test_tool_results();
        test_tool_result_blocks();
        test_results();
        test_assistant_error();
        test_system_other();
        test_rate_limit();
        test_control();
        test_user_text();
        test_stream_event();
        test_unknown_and_missing();
        test_invalid();
        test_huge();
        test_writers();
        printf("test-stream-json: all tests passed\n");
        return EXIT_SUCCESS;
}
