"""Ugly real-world mail, as raw bytes: each kind the intake must take without a crash."""

from __future__ import annotations

FROM = b"From: Nora Quinn <nora@northwind.example>\r\n"
TO = b"To: disputes@accord.localhost\r\n"


def _mail(headers: bytes, body: bytes) -> bytes:
    return headers + b"\r\n" + body


def corpus() -> dict[str, bytes]:
    mails: dict[str, bytes] = {}
    mails["html only"] = _mail(
        FROM + TO + b"Subject: HTML only\r\nMessage-ID: <c1@sender.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        b"<html><body><p>Respondent: Contoso</p><script>alert(1)</script>"
        b"<p>They took our deal.</p></body></html>",
    )
    mails["alternative with broken charset"] = _mail(
        FROM + TO + b"Subject: Broken charset\r\nMessage-ID: <c2@sender.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n',
        b'--b1\r\nContent-Type: text/plain; charset="unknown-8bit"\r\n\r\nCaf\xe9 \xff\xfe deal\r\n'
        b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Caf\xc3\xa9</p>\r\n--b1--\r\n",
    )
    mails["declared utf-8 but latin-1"] = _mail(
        FROM + TO + b"Subject: =?utf-8?q?R=E9sum=E9?=\r\nMessage-ID: <c3@sender.example>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Les donn\xe9es sont fausses.\r\n",
    )
    mails["no headers at all"] = b"\r\njust a body, no headers\r\n"
    mails["no from, no subject, no message-id"] = _mail(TO, b"who am I?\r\n")
    mails["nested forward"] = _mail(
        FROM + TO + b"Subject: Fwd: the original\r\nMessage-ID: <c4@sender.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n',
        b"--outer\r\nContent-Type: text/plain\r\n\r\nSee the forwarded mail.\r\n"
        b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: someone@contoso.example\r\nSubject: inner\r\n"
        b'Content-Type: multipart/mixed; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner--\r\n"
        b"--outer--\r\n",
    )
    mails["calendar invite"] = _mail(
        FROM + TO + b"Subject: Invitation: mediation call\r\nMessage-ID: <c5@sender.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="cal"\r\n',
        b"--cal\r\nContent-Type: text/plain\r\n\r\nJoin the call.\r\n"
        b'--cal\r\nContent-Type: text/calendar; method=REQUEST; name="invite.ics"\r\n'
        b"Content-Disposition: attachment; filename=invite.ics\r\n\r\n"
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:call\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        b"--cal--\r\n",
    )
    mails["shift_jis"] = _mail(
        FROM + TO + b"Subject: =?shift_jis?b?joKijKA=?=\r\nMessage-ID: <c6@sender.example>\r\n"
        b"Content-Type: text/plain; charset=shift_jis\r\n",
        "取引の登録".encode("shift_jis") + b"\r\n",
    )
    mails["koi8-r"] = _mail(
        FROM + TO + b"Subject: koi8\r\nMessage-ID: <c7@sender.example>\r\n"
        b"Content-Type: text/plain; charset=koi8-r\r\n",
        "Сделка".encode("koi8_r") + b"\r\n",
    )
    mails["multipart without boundary"] = _mail(
        FROM + TO + b"Subject: no boundary\r\nMessage-ID: <c8@sender.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n",
        b"--x\r\nContent-Type: text/plain\r\n\r\nlost\r\n--x--\r\n",
    )
    mails["unterminated multipart"] = _mail(
        FROM + TO + b"Subject: unterminated\r\nMessage-ID: <c9@sender.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="z"\r\n',
        b"--z\r\nContent-Type: text/plain\r\n\r\nstarts and never ends\r\n",
    )
    mails["garbage base64 attachment"] = _mail(
        FROM + TO + b"Subject: garbage\r\nMessage-ID: <c10@sender.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="g"\r\n',
        b"--g\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--g\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
        b"\r\n!!!not base64 at all!!!\r\n--g--\r\n",
    )
    deep = b""
    for level in range(60):
        deep += f'Content-Type: multipart/mixed; boundary="d{level}"\r\n\r\n--d{level}\r\n'.encode()
    deep += b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    mails["deeply nested"] = _mail(
        FROM + TO + b"Subject: deep\r\nMessage-ID: <c11@sender.example>\r\nMIME-Version: 1.0\r\n",
        deep,
    )
    folded = b"Subject: " + b"\r\n ".join([b"long subject part"] * 3000) + b"\r\n"
    mails["huge folded header"] = _mail(
        FROM + TO + folded + b"Message-ID: <c12@sender.example>\r\n", b"body\r\n"
    )
    mails["header injection in subject"] = _mail(
        FROM + TO + b"Subject: =?utf-8?q?Deal=0D=0ABcc=3A_everyone=40example=2Ecom?=\r\n"
        b"Message-ID: <c13@sender.example>\r\n",
        b"Respondent: Contoso\r\nsome facts that are long enough\r\n",
    )
    mails["zip attachment"] = _mail(
        FROM + TO + b"Subject: Re: DSP-2026-999999 zip\r\nMessage-ID: <c14@sender.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zz"\r\n',
        b"--zz\r\nContent-Type: text/plain\r\n\r\nzip attached\r\n"
        b"--zz\r\nContent-Type: application/zip; name=bomb.zip\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=bomb.zip\r\n"
        b"\r\nUEsDBBQAAAAIAAAAIQA=\r\n--zz--\r\n",
    )
    return mails


def header_bomb(size: int = 400_000, sender: bytes = b"nora@northwind.example") -> bytes:
    """A Subject of folded encoded words, `size` bytes in all: Python's header parser takes
    time quadratic in it (7 to 20 s for 400 KB on this shared machine), all on one CPU."""
    line = b"=?utf-8?q?a?= " * 5
    count = max(1, size // (len(line) + 3))
    subject = b"Subject: " + b"\r\n ".join([line] * count) + b"\r\n"
    return (
        b"From: "
        + sender
        + b"\r\n"
        + TO
        + b"Message-ID: <bomb."
        + str(size).encode()
        + b"@sender.example>\r\n"
        + subject
        + b"\r\nRespondent: Contoso\r\n"
    )
