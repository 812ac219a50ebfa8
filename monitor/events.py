"""The event schema: every fact the daemon knows is one of these models.

Events are the only way data enters or leaves the log. Each payload carries a literal
``type`` so that one discriminated union parses any stored event; ``SCHEMA_VERSIONS`` says
which version of each payload is current, and ``upcast`` lifts older stored payloads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Every timestamp is compared in UTC; naive ones (SQLite hands them back so) are UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- conflict facts: what the extractor finds in one sentence --------------------------------

Stance = Literal["reported", "claimed", "alleged", "denied", "confirmed"]
Category = Literal["military", "civilian", "unknown"]
Outcome = Literal["killed", "wounded", "missing", "captured"]
Qualifier = Literal["exact", "at_least", "about", "vague"]
CeasefireStatus = Literal["called_for", "proposed", "agreed", "violated", "collapsed"]
InvolvementKind = Literal[
    "military", "arms", "fighters", "political", "mediation", "peacekeeping", "humanitarian"
]
Asset = Literal["drone", "aircraft", "helicopter", "missile"]
DiplomacyKind = Literal["meeting", "talks", "call", "recognition", "statement"]


DeliveryOutcome = Literal["delivered", "failed", "given_up"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class FactBase(_Frozen):
    """Provenance shared by every fact: the sentence, where it sits, who says so, and the
    extraction pattern that read it (``monitor extract --explain`` lists them; None on facts
    stored before patterns were recorded)."""

    quote: str
    span: tuple[int, int]
    attributed_to: str | None = None
    stance: Stance = "reported"
    pattern: str | None = None


class Casualties(FactBase):
    type: Literal["casualties"] = "casualties"
    party: str | None = None
    side: str | None = None
    category: Category = "unknown"
    outcome: Outcome = "killed"
    count: Annotated[int, Field(ge=0)] | None = None
    qualifier: Qualifier = "exact"
    cumulative: bool = False
    increment: Annotated[int, Field(ge=0)] | None = None
    historical: bool = False
    acled_count: Annotated[int, Field(ge=0)] | None = None
    # The city or region the toll is for, when the text names one ("in Khartoum"): a place's
    # toll is its own series.
    place: str | None = None
    # A part of another figure in the same text ("including 29 civilians"): summing tolls
    # must skip it.
    subset: bool = False


class Ceasefire(FactBase):
    type: Literal["ceasefire"] = "ceasefire"
    status: CeasefireStatus
    broker: str | None = None
    count: Annotated[int, Field(ge=0)] | None = None


class ThirdParty(FactBase):
    type: Literal["third_party"] = "third_party"
    actor: str
    kind: InvolvementKind
    supports: str | None = None


class Downing(FactBase):
    type: Literal["downing"] = "downing"
    asset: Asset
    owner: str | None = None
    claimed_by: str | None = None
    denied: bool = False
    # "shot down 98 drones" is one report of 98, not 98 events.
    count: Annotated[int, Field(ge=1)] = 1


class Diplomacy(FactBase):
    type: Literal["diplomacy"] = "diplomacy"
    kind: DiplomacyKind
    participants: list[str] = Field(default_factory=list)


Fact = Annotated[
    Casualties | Ceasefire | ThirdParty | Downing | Diplomacy, Field(discriminator="type")
]
FACT_ADAPTER: TypeAdapter[Fact] = TypeAdapter(Fact, config=ConfigDict(defer_build=True))

# --- log payloads -----------------------------------------------------------------------------


class ArticleRef(_Frozen):
    """Where a fact came from: enough to cite it in an alert without another lookup."""

    article_id: str
    url: str
    outlet: str | None = None
    title: str | None = None
    published: datetime | None = None


class ArticleDiscovered(_Frozen):
    type: Literal["ArticleDiscovered"] = "ArticleDiscovered"
    article_id: str
    feed: str | None = None
    url: str
    guid: str | None = None
    title: str | None = None
    outlet: str | None = None
    published: datetime | None = None


class ArticleFetched(_Frozen):
    type: Literal["ArticleFetched"] = "ArticleFetched"
    article_id: str
    url: str
    final_url: str
    status: int | None = None
    content_type: str | None = None
    content_hash: str
    size: int


class ArticleExtracted(_Frozen):
    type: Literal["ArticleExtracted"] = "ArticleExtracted"
    article_id: str
    url: str
    title: str | None = None
    text: str
    text_hash: str
    language: str | None = None
    published: datetime | None = None
    watches: list[str] = Field(default_factory=list)


class ArticleFailed(_Frozen):
    """An article could not be processed. Schema v2 records whether a retry can help.

    v1 had no ``retryable``: readers had to know that only fetch failures are worth retrying.
    v2 stores that judgement with the fact; a writer that does not state it gets the v1 rule.
    """

    type: Literal["ArticleFailed"] = "ArticleFailed"
    article_id: str
    url: str
    stage: Literal["fetch", "extract", "normalize"]
    reason: str
    retryable: bool

    @model_validator(mode="before")
    @classmethod
    def _default_retryable(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("retryable") is None:
            return {**data, "retryable": data.get("stage") == "fetch"}
        return data


class FactReported(_Frozen):
    """One normalized fact about one watched conflict, with its article."""

    type: Literal["FactReported"] = "FactReported"
    watch: str
    article: ArticleRef
    fact: Fact


class FeedPolled(_Frozen):
    type: Literal["FeedPolled"] = "FeedPolled"
    feed: str
    url: str
    items: int
    new_items: int
    not_modified: bool = False


class FeedFailed(_Frozen):
    type: Literal["FeedFailed"] = "FeedFailed"
    feed: str
    url: str
    reason: str


class EntrySkipped(_Frozen):
    """A feed entry that cannot become an article (no link to fetch): on record, not dropped."""

    type: Literal["EntrySkipped"] = "EntrySkipped"
    feed: str
    url: str  # the feed's location
    guid: str | None = None
    title: str | None = None
    reason: str


class Evidence(_Frozen):
    event_id: str
    quote: str
    url: str
    outlet: str | None = None
    published: datetime | None = None


class AlertRaised(_Frozen):
    type: Literal["AlertRaised"] = "AlertRaised"
    alert_id: str
    rule: str
    rule_hash: str
    severity: str
    watch: str | None = None
    title: str
    summary: str
    dedup_key: str
    data: dict[str, Any] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    # Optional additions (defaults keep older stored alerts valid): "resolved" notices from
    # transition rules, a longer text and HTML body, the event that triggered the alert and
    # why the rule fired, so that `monitor alerts explain` needs no re-evaluation.
    status: Literal["firing", "resolved"] = "firing"
    body: str = ""
    body_html: str | None = None
    trigger_event_id: str | None = None
    explanation: list[str] = Field(default_factory=list)


class AlertSuppressed(_Frozen):
    type: Literal["AlertSuppressed"] = "AlertSuppressed"
    rule: str
    dedup_key: str
    reason: str
    trigger_event_id: str
    # Optional additions: which noise control acted (cooldown, silence, inhibited,
    # hold_cancelled, hold_unconfirmed), the id the alert would have had, and its title.
    kind: str | None = None
    alert_id: str | None = None
    title: str | None = None


class RuleFailed(_Frozen):
    """Evaluating one rule on one event raised an error. The rule is skipped for that event
    only; every other rule still runs and the evaluator's checkpoint moves on, so one broken
    rule cannot stop alerting or make the daemon fail on the same event at each restart."""

    type: Literal["RuleFailed"] = "RuleFailed"
    rule: str
    rule_hash: str
    event_id: str
    error: str


class SilenceMatcher(_Frozen):
    """One label test of a silence, Alertmanager style: ``=``, ``!=``, ``=~``, ``!~``."""

    name: str
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str


class SilenceAdded(_Frozen):
    """An operator mutes alerts whose labels match, from ``starts_at`` until ``ends_at``."""

    type: Literal["SilenceAdded"] = "SilenceAdded"
    silence_id: str
    matchers: list[SilenceMatcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str | None = None
    comment: str = ""


class SilenceExpired(_Frozen):
    """An operator ends a silence early."""

    type: Literal["SilenceExpired"] = "SilenceExpired"
    silence_id: str
    expired_at: datetime


class RulesTicked(_Frozen):
    """The daemon's clock, recorded so that rule holds resolved without a later event replay
    the same way: rule evaluation only ever sees time through the log."""

    type: Literal["RulesTicked"] = "RulesTicked"
    at: datetime


class DeliveryAttempted(_Frozen):
    type: Literal["DeliveryAttempted"] = "DeliveryAttempted"
    alert_id: str
    channel: str
    attempt: int
    outcome: DeliveryOutcome
    latency_ms: int | None = None
    error: str | None = None
    # Optional additions (defaults keep older stored events valid). ``attempt`` counts claims,
    # so an attempt number with no event is a worker that died mid-delivery. ``message_id`` is
    # the message sent; alerts grouped into one message share it and list each other in
    # ``group``. ``superseded``: the worker's lease had expired and a newer claim owned the row,
    # so this attempt did not change its state. ``reports_on``: this delivery was the health
    # report about the given-up delivery to that channel. ``target``: the redacted URL.
    message_id: str | None = None
    group: list[str] = Field(default_factory=list)
    superseded: bool = False
    reports_on: str | None = None
    target: str | None = None


class DeliveryRequeued(_Frozen):
    """An operator put a delivery back in the queue (``monitor alerts retry``)."""

    type: Literal["DeliveryRequeued"] = "DeliveryRequeued"
    alert_id: str
    channel: str
    previous_status: str
    attempts: int


EventData = Annotated[
    ArticleDiscovered
    | ArticleFetched
    | ArticleExtracted
    | ArticleFailed
    | FactReported
    | FeedPolled
    | FeedFailed
    | EntrySkipped
    | AlertRaised
    | AlertSuppressed
    | RuleFailed
    | DeliveryAttempted
    | DeliveryRequeued
    | SilenceAdded
    | SilenceExpired
    | RulesTicked,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[EventData] = TypeAdapter(EventData, config=ConfigDict(defer_build=True))

# Current schema version of each payload type; bump it and register an upcaster for the old
# version when a payload changes shape, so that old logs keep reading.
SCHEMA_VERSIONS: dict[str, int] = {
    "ArticleDiscovered": 1,
    "ArticleFetched": 1,
    "ArticleExtracted": 1,
    "ArticleFailed": 2,
    "FactReported": 2,
    "FeedPolled": 1,
    "FeedFailed": 1,
    "EntrySkipped": 1,
    "AlertRaised": 1,
    "AlertSuppressed": 1,
    "RuleFailed": 1,
    "DeliveryAttempted": 1,
    "DeliveryRequeued": 1,
    "SilenceAdded": 1,
    "SilenceExpired": 1,
    "RulesTicked": 1,
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, from_version) -> function lifting a stored payload of that version by one version.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(type_: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn`` as the step from ``from_version`` to ``from_version + 1`` of ``type_``."""

    def register(fn: Upcaster) -> Upcaster:
        key = (type_, from_version)
        if key in UPCASTERS:
            raise ValueError(f"two upcasters for {type_} v{from_version}")
        UPCASTERS[key] = fn
        return fn

    return register


@upcaster("ArticleFailed", 1)
def _article_failed_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # v1 writers retried fetch failures only (network errors, 5xx); any later stage failed
    # on the content itself, which does not change on a second try.
    return {**data, "retryable": data.get("stage") == "fetch"}


@upcaster("FactReported", 1)
def _fact_reported_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # v2 facts name the pattern that read them; a v1 fact's pattern is unknown (None).
    return {**data, "fact": {**data.get("fact", {}), "pattern": None}}


def upcast(type_: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Lift a stored payload of an older schema version to the current one, step by step."""
    current = SCHEMA_VERSIONS.get(type_)
    if current is None:
        raise ValueError(f"unknown event type {type_!r}")
    if version > current:
        raise ValueError(f"{type_} v{version} is newer than this program (v{current})")
    if version < 1:
        raise ValueError(f"{type_} v{version}: schema versions start at 1")
    while version < current:
        step = UPCASTERS.get((type_, version))
        if step is None:
            raise ValueError(f"no upcaster from {type_} v{version} to v{version + 1}")
        data = step(dict(data))
        version += 1
    return {**data, "type": type_}


def parse_event_data(type_: str, version: int, data: dict[str, Any]) -> EventData:
    """The only way a stored payload comes back out: upcast, then validated by its model."""
    return EVENT_ADAPTER.validate_python(upcast(type_, version, data))
