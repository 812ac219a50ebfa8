"""The evaluator's shortcuts give what the general code gives: an alert id is ``uuid5`` of
its text."""

from __future__ import annotations

import uuid

from monitor.alerting.pending import ALERT_NAMESPACE, alert_uuid


def test_alert_ids_are_uuid5_of_their_text() -> None:
    texts = ["", "r1|w:north:12|e-1", "jump|Ωmega|évidence", "x" * 1000, "\U0001f600|tab\there"]
    texts += [f"rule-{i}|key-{i * 7}|{uuid.UUID(int=i * 7919)}" for i in range(300)]
    for text in texts:
        assert alert_uuid(text) == str(uuid.uuid5(ALERT_NAMESPACE, text))
