"""Every write of the routing app. Import from here (``from routing import services as routing``).

Topics: ``people`` (person links, merge, tags), ``orders``, ``rfm`` (recompute, lookups), ``hours``
(business hours), ``rules`` (routing rules), ``assignment`` (agent choice, queues), ``handoff`` (triggers,
start), ``tickets`` (agent actions, CSAT, SLA), ``presence`` (online/away/offline), ``events`` (history
rows and realtime groups), ``crossing`` (the only writes into the bots app).
"""

from routing.services.assignment import agent_pick, queue_dispatch, queue_position, queue_snapshot
from routing.services.events import SUPERVISORS, agent_channel, group_channel, ticket_payload
from routing.services.handoff import handoff_check, handoff_start, intent_from_trace
from routing.services.hours import group_is_open, group_next_open
from routing.services.orders import order_upsert
from routing.services.people import (
    customers_merge,
    person_for_customer,
    person_id_for_customer,
    person_tags_set,
    persons_merge,
)
from routing.services.presence import agent_heartbeat, agent_presence_set, presence_sweep, queues_dispatch_all
from routing.services.rfm import customer_rfm, rfm_lookup, rfm_recompute, rfm_recompute_request
from routing.services.tickets import (
    csat_capture,
    sla_sweep,
    ticket_claim,
    ticket_close,
    ticket_customer_message,
    ticket_note_add,
    ticket_reply,
    ticket_requeue,
    ticket_resolve,
    ticket_return_to_bot,
    ticket_transfer,
    tickets_autoclose,
)

__all__ = [
    "SUPERVISORS",
    "agent_channel",
    "agent_heartbeat",
    "agent_pick",
    "agent_presence_set",
    "csat_capture",
    "customer_rfm",
    "customers_merge",
    "group_channel",
    "group_is_open",
    "group_next_open",
    "handoff_check",
    "handoff_start",
    "intent_from_trace",
    "order_upsert",
    "person_for_customer",
    "person_id_for_customer",
    "person_tags_set",
    "persons_merge",
    "presence_sweep",
    "queue_dispatch",
    "queue_position",
    "queue_snapshot",
    "queues_dispatch_all",
    "rfm_lookup",
    "rfm_recompute",
    "rfm_recompute_request",
    "sla_sweep",
    "ticket_claim",
    "ticket_close",
    "ticket_customer_message",
    "ticket_note_add",
    "ticket_payload",
    "ticket_reply",
    "ticket_requeue",
    "ticket_resolve",
    "ticket_return_to_bot",
    "ticket_transfer",
    "tickets_autoclose",
]
