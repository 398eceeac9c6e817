/*
 * fs_cli tab completion: the complete table (switch_console_set_complete) and
 * one completion function of ours, called by FreeSWITCH through a trampoline
 * (its callbacks carry no user data).
 */
#include <switch.h>
#include "zorio_c2c_shim.h"

/* Set before our function is registered; read by the trampoline, which
   FreeSWITCH runs only while the name is registered and under its console
   function lock (switch_console_run_complete_func), the lock that
   switch_console_del_complete_func takes too: once del returns, no call of
   ours is in flight and none will start. */
static zc2c_complete_fn complete_slot;

/* FreeSWITCH hands completion functions an UNINITIALISED list pointer
   (switch_console.c: `switch_console_callback_match_t *matches;` then
   `&matches`) and reads it only on SWITCH_STATUS_SUCCESS: like its own
   functions, build the list from NULL and hand it over only when non-empty. */
static switch_status_t complete_trampoline(const char *line, const char *cursor, switch_console_callback_match_t **matches)
{
	switch_console_callback_match_t *mine = NULL;
	zc2c_complete_fn fn = complete_slot;
	if (!fn || !matches) {
		return SWITCH_STATUS_FALSE;
	}
	fn(line, cursor, (zc2c_matches *) &mine);
	if (!mine) {
		return SWITCH_STATUS_FALSE;
	}
	*matches = mine;
	return SWITCH_STATUS_SUCCESS;
}

int zc2c_console_set_complete(const char *line)
{
	if (!line) {
		return ZC2C_STATUS_FALSE;
	}
	return (int) switch_console_set_complete(line);
}

int zc2c_console_add_complete_func(const char *name, zc2c_complete_fn fn)
{
	if (!name || !fn) {
		return ZC2C_STATUS_FALSE;
	}
	complete_slot = fn;
	return (int) switch_console_add_complete_func(name, complete_trampoline);
}

int zc2c_console_del_complete_func(const char *name)
{
	if (!name) {
		return ZC2C_STATUS_FALSE;
	}
	return (int) switch_console_del_complete_func(name);
}

void zc2c_push_match(zc2c_matches *matches, const char *value)
{
	if (matches && value) {
		switch_console_push_match((switch_console_callback_match_t **) matches, value);
	}
}
