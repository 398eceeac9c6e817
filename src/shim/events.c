/* Event bindings and CUSTOM events. */
#include <switch.h>
#include "zorio_c2c_shim.h"

struct zc2c_binding {
	switch_event_node_t *node;
	zc2c_event_fn fn;
};

static void on_event(switch_event_t *event)
{
	struct zc2c_binding *b = event ? (struct zc2c_binding *) event->bind_user_data : NULL;
	if (b && b->fn) {
		b->fn((zc2c_event *) event);
	}
}

static switch_event_types_t kind_to_type(int kind)
{
	switch (kind) {
	case ZC2C_EV_PROGRESS: return SWITCH_EVENT_CHANNEL_PROGRESS;
	case ZC2C_EV_PROGRESS_MEDIA: return SWITCH_EVENT_CHANNEL_PROGRESS_MEDIA;
	case ZC2C_EV_ANSWER: return SWITCH_EVENT_CHANNEL_ANSWER;
	case ZC2C_EV_HANGUP_COMPLETE: return SWITCH_EVENT_CHANNEL_HANGUP_COMPLETE;
	case ZC2C_EV_DESTROY: return SWITCH_EVENT_CHANNEL_DESTROY;
	case ZC2C_EV_BRIDGE: return SWITCH_EVENT_CHANNEL_BRIDGE;
	case ZC2C_EV_HANGUP: return SWITCH_EVENT_CHANNEL_HANGUP;
	case ZC2C_EV_EXECUTE_COMPLETE: return SWITCH_EVENT_CHANNEL_EXECUTE_COMPLETE;
	default: return SWITCH_EVENT_ALL;
	}
}

zc2c_binding *zc2c_event_bind(const char *id, int kind, zc2c_event_fn fn)
{
	struct zc2c_binding *b;
	switch_event_types_t type = kind_to_type(kind);

	if (!id || !fn || type == SWITCH_EVENT_ALL || !(b = calloc(1, sizeof(*b)))) {
		return NULL;
	}
	b->fn = fn;
	if (switch_event_bind_removable(id, type, SWITCH_EVENT_SUBCLASS_ANY, on_event, b, &b->node) != SWITCH_STATUS_SUCCESS) {
		free(b);
		return NULL;
	}
	return (zc2c_binding *) b;
}

void zc2c_event_unbind(zc2c_binding *binding)
{
	struct zc2c_binding *b = (struct zc2c_binding *) binding;
	if (b) {
		/* Returns once no delivery to this node is in flight (the event system's write lock). */
		switch_event_unbind(&b->node);
		free(b);
	}
}

int zc2c_event_kind(zc2c_event *event)
{
	switch_event_t *e = (switch_event_t *) event;
	if (!e) {
		return ZC2C_EV_OTHER;
	}
	switch (e->event_id) {
	case SWITCH_EVENT_CHANNEL_PROGRESS: return ZC2C_EV_PROGRESS;
	case SWITCH_EVENT_CHANNEL_PROGRESS_MEDIA: return ZC2C_EV_PROGRESS_MEDIA;
	case SWITCH_EVENT_CHANNEL_ANSWER: return ZC2C_EV_ANSWER;
	case SWITCH_EVENT_CHANNEL_HANGUP_COMPLETE: return ZC2C_EV_HANGUP_COMPLETE;
	case SWITCH_EVENT_CHANNEL_DESTROY: return ZC2C_EV_DESTROY;
	case SWITCH_EVENT_CHANNEL_BRIDGE: return ZC2C_EV_BRIDGE;
	case SWITCH_EVENT_CHANNEL_HANGUP: return ZC2C_EV_HANGUP;
	case SWITCH_EVENT_CHANNEL_EXECUTE_COMPLETE: return ZC2C_EV_EXECUTE_COMPLETE;
	default: return ZC2C_EV_OTHER;
	}
}

const char *zc2c_event_header(zc2c_event *event, const char *name)
{
	if (!event || !name) {
		return NULL;
	}
	return switch_event_get_header((switch_event_t *) event, name);
}

/* A header's name as the switch hashes it (switch_event_get_header's test). */
static int is_header(const switch_event_header_t *hp, unsigned long hash, const char *name)
{
	return (!hp->hash || hp->hash == hash) && !strcasecmp(hp->name, name);
}

void zc2c_event_read_head(zc2c_event *event, zc2c_event_head *head)
{
	switch_event_t *e = (switch_event_t *) event;
	switch_event_header_t *hp;
	switch_ssize_t l1 = -1, l2 = -1, l3 = -1;
	unsigned long h_uuid, h_seq, h_ts;
	int found = 0;

	if (!head) {
		return;
	}
	memset(head, 0, sizeof(*head));
	if (!e) {
		return;
	}
	h_uuid = switch_ci_hashfunc_default("Unique-ID", &l1);
	h_seq = switch_ci_hashfunc_default("Event-Sequence", &l2);
	h_ts = switch_ci_hashfunc_default("Event-Date-Timestamp", &l3);
	/* Three names among an event's first twenty headers: one walk that stops
	   once all three are seen, never into the channel's variables. */
	for (hp = e->headers; hp && found < 3; hp = hp->next) {
		if (!hp->name || !hp->value) {
			continue;
		}
		if (is_header(hp, h_uuid, "Unique-ID")) {
			size_t n = strlen(hp->value);
			if (n < sizeof(head->unique_id)) {
				memcpy(head->unique_id, hp->value, n + 1);
			}
			found++;
		} else if (is_header(hp, h_seq, "Event-Sequence")) {
			head->sequence = strtoull(hp->value, NULL, 10);
			found++;
		} else if (is_header(hp, h_ts, "Event-Date-Timestamp")) {
			head->timestamp_us = strtoull(hp->value, NULL, 10);
			found++;
		}
	}
}

uint64_t zc2c_event_sequence_now(void)
{
	switch_event_t *event = NULL;
	const char *seq;
	uint64_t n = 0;

	if (switch_event_create(&event, SWITCH_EVENT_GENERAL) != SWITCH_STATUS_SUCCESS || !event) {
		return 0;
	}
	if ((seq = switch_event_get_header(event, "Event-Sequence"))) {
		n = strtoull(seq, NULL, 10);
	}
	switch_event_destroy(&event);
	return n;
}

uint64_t zc2c_event_queue_capacity(void)
{
	uint32_t dispatchers = switch_core_cpu_count() / 2 + 1;
	return (uint64_t) 10000 * (dispatchers < 2 ? 2 : dispatchers);
}

int zc2c_subclass_reserve(const char *owner, const char *subclass)
{
	if (!owner || !subclass) {
		return ZC2C_STATUS_FALSE;
	}
	return switch_event_reserve_subclass_detailed(owner, subclass);
}

int zc2c_subclass_free(const char *owner, const char *subclass)
{
	if (!owner || !subclass) {
		return ZC2C_STATUS_FALSE;
	}
	return switch_event_free_subclass_detailed(owner, subclass);
}

int zc2c_fire_custom(const char *subclass, const char *const *names, const char *const *values, size_t count,
					 const char *body)
{
	switch_event_t *event = NULL;
	size_t i;

	if (!subclass || switch_event_create_subclass(&event, SWITCH_EVENT_CUSTOM, subclass) != SWITCH_STATUS_SUCCESS) {
		return ZC2C_STATUS_FALSE;
	}
	for (i = 0; i < count; i++) {
		if (names && values && names[i] && values[i]) {
			switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, names[i], values[i]);
		}
	}
	if (body) {
		switch_event_set_body(event, body);
	}
	/* Handed to the event's subscribers on this thread (the module's courier),
	   as a dispatch thread would: not queued behind the switch's dispatch
	   thread, which an overloaded switch waits on. The event was stamped
	   (Event-Date-Timestamp, Event-Sequence) when created. */
	switch_event_deliver(&event);
	return ZC2C_STATUS_SUCCESS;
}
