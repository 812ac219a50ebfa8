"""The event schema: every fact the daemon knows is one of these models.

Events are the only way data enters or leaves the log. Each payload carries a literal
``type`` so that one discriminated union parses any stored event; ``SCHEMA_VERSIONS`` says
which version of each payload is current, and ``upcast`` lifts older stored payloads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FactBase(_Frozen):
    """Provenance shared by every fact: the sentence, where it sits, who says so."""

    quote: str
    span: tuple[int, int]
    attributed_to: str | None = None
    stance: Stance = "reported"


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


class Diplomacy(FactBase):
    type: Literal["diplomacy"] = "diplomacy"
    kind: DiplomacyKind
    participants: list[str] = Field(default_factory=list)


Fact = Annotated[
    Union[Casualties, Ceasefire, ThirdParty, Downing, Diplomacy], Field(discriminator="type")
]
FACT_ADAPTER: TypeAdapter[Fact] = TypeAdapter(Fact)

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
    type: Literal["ArticleFailed"] = "ArticleFailed"
    article_id: str
    url: str
    stage: Literal["fetch", "extract", "normalize"]
    reason: str


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


class AlertSuppressed(_Frozen):
    type: Literal["AlertSuppressed"] = "AlertSuppressed"
    rule: str
    dedup_key: str
    reason: str
    trigger_event_id: str


class DeliveryAttempted(_Frozen):
    type: Literal["DeliveryAttempted"] = "DeliveryAttempted"
    alert_id: str
    channel: str
    attempt: int
    outcome: Literal["delivered", "failed", "given_up"]
    latency_ms: int | None = None
    error: str | None = None


EventData = Annotated[
    Union[
        ArticleDiscovered,
        ArticleFetched,
        ArticleExtracted,
        ArticleFailed,
        FactReported,
        FeedPolled,
        FeedFailed,
        AlertRaised,
        AlertSuppressed,
        DeliveryAttempted,
    ],
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[EventData] = TypeAdapter(EventData)

# Current schema version of each payload type; bump it and add an upcaster when a payload
# changes shape, so that old logs keep reading.
SCHEMA_VERSIONS: dict[str, int] = {
    name: 1
    for name in (
        "ArticleDiscovered",
        "ArticleFetched",
        "ArticleExtracted",
        "ArticleFailed",
        "FactReported",
        "FeedPolled",
        "FeedFailed",
        "AlertRaised",
        "AlertSuppressed",
        "DeliveryAttempted",
    )
}


def upcast(type_: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Lift a stored payload of an older schema version to the current one."""
    current = SCHEMA_VERSIONS.get(type_)
    if current is None:
        raise ValueError(f"unknown event type {type_!r}")
    if version > current:
        raise ValueError(f"{type_} v{version} is newer than this program (v{current})")
    return {**data, "type": type_}


def parse_event_data(type_: str, version: int, data: dict[str, Any]) -> EventData:
    return EVENT_ADAPTER.validate_python(upcast(type_, version, data))
