"""Email through Apprise's SMTP plugin, with our own MIME message.

Apprise's ``mailto://`` plugin (``apprise/plugins/email/base.py``) parses the URL (user,
password, host, ``smtp=``, ``mode=``, ``from=``, ``to=``, ``cc=``, ``bcc=``, ``+Header=``
extra headers, provider defaults for Gmail and others) and talks SMTP through
``AppriseSMTPController``. Two things it cannot do for us:

- a stable ``Message-ID``: it always appends ``make_msgid()`` *after* the extra headers, so a
  ``+Message-ID=`` header yields two Message-ID headers, the second one random;
- a text part of our own: for HTML it derives the text part by converting the HTML body.

So ``AlertEmail`` subclasses the plugin and replaces only ``send``: the URL grammar, provider
templates, TLS modes and login stay Apprise's; the message is built with the standard library
``email.message.EmailMessage``: subject, a text part and an HTML part written from the alert,
``Message-ID: <message-key@sender-domain>`` (the alert id for one alert), and
``X-Monitor-Alert-Id`` naming every alert in it. A resend after a crash carries the same
Message-ID, so mail systems and clients can drop the copy. No Apprise registry is changed: the
instance is built per message and used directly.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

from apprise.exception import AppriseImproperlyConfigured
from apprise.plugins.email import NotifyEmail
from apprise.plugins.email.smtp import AppriseSMTPController

from monitor.notify.message import Message

EMAIL_SCHEMES = ("mailto", "mailtos")


class AlertEmail(NotifyEmail):
    """Apprise's SMTP email plugin sending one prepared alert ``Message``."""

    def __init__(self, message: Message, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def compose(self) -> EmailMessage:
        """The MIME message: one email to every ``to`` (cc, bcc as the URL says)."""
        msg = self.message
        mail = EmailMessage()
        for name, value in self.headers.items():
            if name.lower() not in {"message-id", "subject", "from", "to", "cc", "date"}:
                mail[name] = value
        mail["Subject"] = " ".join(msg.title.split())
        mail["From"] = formataddr((self.from_addr[0] or "", self.from_addr[1]))
        mail["To"] = ", ".join(formataddr((n or "", a)) for n, a in self.targets)
        cc = sorted(self.cc - self.bcc - {a for _, a in self.targets})
        if cc:
            mail["Cc"] = ", ".join(formataddr((self.names.get(a) or "", a)) for a in cc)
        if self.reply_to:
            mail["Reply-To"] = ", ".join(sorted(self.reply_to))
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = f"<{msg.key}@{self.domain()}>"
        mail["X-Application"] = self.app_id
        if msg.alert_ids:
            mail["X-Monitor-Alert-Id"] = ", ".join(msg.alert_ids)
        mail.set_content(msg.text)
        mail.add_alternative(_html_document(msg), subtype="html")
        return mail

    def domain(self) -> str:
        sender = self.from_addr[1] or ""
        return sender.rpartition("@")[2] or self.smtp_host or "monitor.invalid"

    def recipients(self) -> list[str]:
        return list(dict.fromkeys([a for _, a in self.targets] + sorted(self.cc | self.bcc)))

    def send(self, body: str, title: str = "", *args: Any, **kwargs: Any) -> bool:
        """Send the prepared message in one SMTP transaction; ``body`` and ``title`` are unused
        because the message already holds every part."""
        if not self.targets:
            self.logger.warning("There are no Email recipients to notify")
            return False
        self.throttle()
        try:
            with AppriseSMTPController(
                host=self.smtp_host,
                port=self.port,
                secure_mode=self.secure_mode,
                user=self.user,
                password=self.password,
                verify_certificate=self.verify_certificate,
                # Apprise annotates this int but passes its own float seconds here too.
                socket_connect_timeout=self.socket_connect_timeout,  # type: ignore[arg-type]
            ) as smtp:
                mail = self.compose()
                if not smtp.sendmail(self.from_addr[1], self.recipients(), mail.as_string()):
                    self.logger.warning("SMTP server %s did not accept the message", self.smtp_host)
                    return False
        except (OSError, smtplib.SMTPException, RuntimeError, AppriseImproperlyConfigured) as exc:
            self.logger.warning(
                "cannot submit email through %s:%s: %s", self.smtp_host, self.port, exc
            )
            return False
        self.logger.info("Sent Email %s", self.message.key)
        return True


def _html_document(msg: Message) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>\n'
        f"{msg.html}\n</body></html>\n"
    )


def email_plugin(url: str, message: Message) -> AlertEmail | None:
    """``AlertEmail`` for a ``mailto://``/``mailtos://`` URL, None for any other scheme."""
    scheme = url.partition("://")[0].lower()
    if scheme not in EMAIL_SCHEMES:
        return None
    parsed = NotifyEmail.parse_url(url)
    if not parsed:
        return None
    try:
        return AlertEmail(message=message, **parsed)
    except TypeError:
        return None
