/*
 * zorio_c2c_shim.h: the only contract between the Rust module and the C shim.
 *
 * Plain C types and opaque pointers only: no FreeSWITCH type appears here, so
 * bindgen needs no FreeSWITCH headers. The shim (src/shim/ *.c) includes
 * switch.h and checks at compile time that what we mirror here matches.
 *
 * Ownership: every char* a zc2c_* function returns is allocated by C and must
 * be released with zc2c_free (or the named clear/free function).
 * "Borrowed" pointers stay valid only for the duration of the callback.
 */
#ifndef ZORIO_C2C_SHIM_H
#define ZORIO_C2C_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque FreeSWITCH objects. */
typedef struct zc2c_module_interface zc2c_module_interface; /* switch_loadable_module_interface_t */
typedef struct zc2c_pool zc2c_pool;                         /* switch_memory_pool_t */
typedef struct zc2c_stream zc2c_stream;                     /* switch_stream_handle_t */
typedef struct zc2c_event zc2c_event;                       /* switch_event_t (borrowed in callbacks) */
typedef struct zc2c_vars zc2c_vars;                         /* switch_event_t holding originate variables */
typedef struct zc2c_binding zc2c_binding;                   /* an event binding of ours */

/* switch_status_t values we return (checked against switch_types.h by the shim). */
enum {
	ZC2C_STATUS_SUCCESS = 0,
	ZC2C_STATUS_FALSE = 1,
	ZC2C_STATUS_GENERR = 9,
	ZC2C_STATUS_NOUNLOAD = 16,
	ZC2C_STATUS_TERM = 21
};

/* Log levels (mapped onto switch_log_level_t by the shim). */
enum {
	ZC2C_LOG_DEBUG = 0,
	ZC2C_LOG_INFO = 1,
	ZC2C_LOG_NOTICE = 2,
	ZC2C_LOG_WARNING = 3,
	ZC2C_LOG_ERROR = 4,
	ZC2C_LOG_CRIT = 5
};

/* Channel events we bind (mapped onto switch_event_types_t by the shim). */
enum {
	ZC2C_EV_OTHER = 0,
	ZC2C_EV_PROGRESS = 1,
	ZC2C_EV_PROGRESS_MEDIA = 2,
	ZC2C_EV_ANSWER = 3,
	ZC2C_EV_HANGUP_COMPLETE = 4,
	ZC2C_EV_DESTROY = 5,
	ZC2C_EV_BRIDGE = 6,
	ZC2C_EV_HANGUP = 7,
	ZC2C_EV_EXECUTE_COMPLETE = 8
};

/* Mirror of switch_loadable_module_function_table_t (layout checked by the shim). */
typedef int (*zc2c_module_load_fn)(zc2c_module_interface **module_interface, zc2c_pool *pool);
typedef int (*zc2c_module_fn)(void);
typedef struct zc2c_module_table {
	int switch_api_version;
	zc2c_module_load_fn load;
	zc2c_module_fn shutdown;
	zc2c_module_fn runtime;
	uint32_t flags;
} zc2c_module_table;

/* Module and API interfaces. Strings passed to zc2c_add_api must outlive the module. */
typedef int (*zc2c_api_fn)(const char *cmd, zc2c_stream *stream);
zc2c_module_interface *zc2c_module_create(zc2c_module_interface **out, zc2c_pool *pool, const char *name);
int zc2c_add_api(zc2c_module_interface *module, const char *name, const char *desc, const char *syntax, zc2c_api_fn fn);
void zc2c_stream_write(zc2c_stream *stream, const char *text);
/* A header of the stream's param_event (what mod_xml_rpc tells an API about the
   HTTP request), or NULL (no such header, or no param_event as under fs_cli).
   Borrowed: valid during the API call only. */
const char *zc2c_stream_param(zc2c_stream *stream, const char *name);

/* Logging: text is always printed with "%s". uuid may be NULL. */
void zc2c_log(int level, const char *uuid, const char *file, const char *func, int line, const char *text);

/* Memory allocated by the shim. */
void zc2c_free(void *p);

/* Configuration: the <configuration name=cf> element as XML text, or NULL. */
char *zc2c_config_xml(const char *cf);
/* A global variable of the switch (e.g. "domain"), or NULL. */
char *zc2c_global_var(const char *name);
/* 1 when a loaded format module writes files of extension ext (e.g. "wav"), else 0. */
int zc2c_file_format_writable(const char *ext);

/* Directory. */
typedef struct zc2c_user {
	char *status;                    /* zorio_c2c_status (variable, else param), or NULL */
	char *outbound_caller_id_number; /* outbound_caller_id_number, or NULL */
	char *outbound_caller_id_name;   /* outbound_caller_id_name, or NULL */
} zc2c_user;
/* 1 found (fills out), 0 not found. */
int zc2c_user_lookup(const char *id, const char *domain, zc2c_user *out);
void zc2c_user_clear(zc2c_user *user);

/* Originate variables. */
zc2c_vars *zc2c_vars_new(void);
int zc2c_vars_add(zc2c_vars *vars, const char *name, const char *value);
void zc2c_vars_free(zc2c_vars *vars);

/* Originate: blocks until answered or failed. On answer the channel is left
   held where originate puts it (CS_CONSUME_MEDIA), for zc2c_dial_from. */
typedef struct zc2c_originate_result {
	int answered;
	const char *cause; /* static hangup cause name (never freed) */
	/* Answered: how long the switch itself took over the setup, in µs: the
	   longer of channel created → the phone's 180 or 183 (when it sent one),
	   and marked answered → originate returning; -1 when unknown. */
	int64_t setup_delay_us;
} zc2c_originate_result;
/* cancel: a cause code the caller may set (> 0) from another thread to abandon the
   originate while it rings (FreeSWITCH polls it); must outlive the call. */
int zc2c_originate(const char *dial_string, uint32_t timeout_sec, const char *cid_name, const char *cid_num,
				   zc2c_vars *vars, int32_t *cancel, zc2c_originate_result *out);

/* Starts mod_dptools' `bridge <dial_string>` on the answered agent
 * `agent_uuid`: one attempt at the customer's leg, dialled from the agent's
 * session (its early media relayed, else `ringback` played as
 * transfer_ringback; NULL or "": silence), bridged to the agent once answered.
 * A held agent (the first attempt) runs it at once, as `originate …
 * &bridge(…)` does; a parked one (after a failed attempt, or ringback while
 * waiting for a trunk) has it queued on its park.
 * `vars` become the new leg's variables verbatim (exported from the agent);
 * `app_uuid` comes back as Application-UUID of the agent's
 * CHANNEL_EXECUTE_COMPLETE when the application returns. 1 started or queued,
 * 0 no such channel (or it is hanging up), -1 neither held nor parked yet
 * (e.g. its last `bridge` returned, its `park` not started): try again shortly. */
int zc2c_dial_from(const char *agent_uuid, const char *dial_string, zc2c_vars *vars, const char *ringback,
				   const char *app_uuid);
/* Once the attempt is over: takes the exports of `vars` (and continue_on_fail)
 * off the agent, so that nothing later dialled from it inherits them. */
void zc2c_dial_clear(const char *agent_uuid, zc2c_vars *vars);
/* Plays `app` (gentones or endless_playback) with `arg` to the answered agent
 * (held: parked first; or parked) until zc2c_waiting_stop: ringback while its
 * call waits for a trunk. 1 when queued. */
int zc2c_waiting_start(const char *agent_uuid, const char *app, const char *arg);
/* Stops what zc2c_waiting_start queued: dropped if not started, broken if playing. */
void zc2c_waiting_stop(const char *agent_uuid);
/* The hangup cause code of a cause name (NORMAL_CLEARING for an unknown one). */
int32_t zc2c_cause_code(const char *name);
int zc2c_uuid_bridge(const char *a_uuid, const char *b_uuid);
/* 1 hung up, 0 no such channel. */
int zc2c_hangup(const char *uuid, const char *cause);
int zc2c_uuid_exists(const char *uuid);
/* The switch's session limit (max-sessions, as `fsctl max_sessions` sets it). */
uint32_t zc2c_max_sessions(void);
/* The switch's channels now (switch_core_session_count). */
uint32_t zc2c_sessions_in_use(void);
/* 1 once the switch takes calls (not while it loads its modules at boot). */
int zc2c_core_ready(void);
/* Channels whose presence_id is `presence_id` (user@domain): any call of that user. */
int zc2c_presence_in_use(const char *presence_id);
/* Every channel up now that has the variable `var` (a gateway's channels:
 * sip_gateway_name), whoever placed it: a line `uuid<TAB>value` each,
 * malloc'd (free with zc2c_free); NULL when there is none. One walk of the
 * sessions (the session table, not the core db, which lags), whatever the
 * number of values asked of it. */
char *zc2c_channels_by(const char *var);
/* A channel variable's value, malloc'd (free with zc2c_free); NULL when the
 * channel or the variable does not exist. */
char *zc2c_channel_var(const char *uuid, const char *name);
/* Sets a variable on a channel that is up: 1 set, 0 no such channel or it is hanging up. */
int zc2c_channel_tag(const char *uuid, const char *name, const char *value);

/* Runs the API command `cmd` with `arg` (switch_api_execute, no session), as
 * fs_cli's `cmd arg` would: its output, malloc'd (free with zc2c_free), or
 * NULL when there is no such command. Blocks for as long as the command. */
char *zc2c_api_execute(const char *cmd, const char *arg);

/* Events. The callback runs on a FreeSWITCH thread. */
typedef void (*zc2c_event_fn)(zc2c_event *event);
zc2c_binding *zc2c_event_bind(const char *id, int kind, zc2c_event_fn fn);
void zc2c_event_unbind(zc2c_binding *binding);
int zc2c_event_kind(zc2c_event *event);
/* Borrowed: valid during the callback only. */
const char *zc2c_event_header(zc2c_event *event, const char *name);
/* What every channel event starts with, read in one pass over its first
   headers (a lookup by name walks from the first header each time):
   Event-Date-Timestamp, Event-Sequence (0 when absent) and Unique-ID (NUL-
   terminated, empty when absent or longer than 36). */
typedef struct zc2c_event_head {
	uint64_t timestamp_us;
	uint64_t sequence;
	char unique_id[37];
} zc2c_event_head;
void zc2c_event_read_head(zc2c_event *event, zc2c_event_head *head);
/* The switch's newest event sequence number (each event gets the next when
   created): a throwaway event is created, read and destroyed, never fired.
   0 when none could be created. */
uint64_t zc2c_event_sequence_now(void);
/* How many events the switch's dispatch queue holds before every thread that
   fires one waits: switch_event.c's DISPATCH_QUEUE_LEN (10,000) times its
   dispatch threads at most (cores / 2 + 1, at least 2). */
uint64_t zc2c_event_queue_capacity(void);

/* CUSTOM events. */
int zc2c_subclass_reserve(const char *owner, const char *subclass);
int zc2c_subclass_free(const char *owner, const char *subclass);
int zc2c_fire_custom(const char *subclass, const char *const *names, const char *const *values, size_t count,
					 const char *body);

/* fs_cli tab completion (src/shim/console.c). */
typedef struct zc2c_matches zc2c_matches; /* the match list a completion fills (borrowed) */
/* A completion function: push the candidates for the word at `cursor` of
   `line` (either may be NULL) into `matches` with zc2c_push_match. Runs on a
   FreeSWITCH thread, under FreeSWITCH's console lock: must not block. */
typedef void (*zc2c_complete_fn)(const char *line, const char *cursor, zc2c_matches *matches);
/* switch_console_set_complete: "add c2c status ::owner::func", "del c2c". */
int zc2c_console_set_complete(const char *line);
/* Registers / removes the one completion function of ours (one slot: a second
   name replaces the first). `name` must outlive the registration. Once
   zc2c_console_del_complete_func returns, `fn` is never called again. */
int zc2c_console_add_complete_func(const char *name, zc2c_complete_fn fn);
int zc2c_console_del_complete_func(const char *name);
/* Adds a copy of `value` to `matches` (C allocates it, FreeSWITCH frees the list). */
void zc2c_push_match(zc2c_matches *matches, const char *value);

#ifdef __cplusplus
}
#endif
#endif
