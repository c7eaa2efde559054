"""Source texts: the one parser (kinds, names, the URL FFmpeg gets) and passwords that never leak.

The password tests are property-style: many nasty passwords (every character that is not URL-safe,
pasted raw) go through the real error paths (a malformed URL, a closed port on 127.0.0.1, the
``maskwatch --headless`` process) and the password must not appear in anything they print.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import time
from urllib.parse import unquote, urlsplit

import pytest

from conftest import TINY_MODEL, run_cli
from maskwatch.config import Config, SourceConfig
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.sources import open_source
from maskwatch.sources.spec import (
    SECRET_KEYS,
    Credentials,
    SourceSpec,
    display_path,
    is_network_url,
    parse,
    redact,
    split_credentials,
    split_password,
    strip_password,
    with_credentials,
    with_password,
)
from rtsp import FIXTURES, RtspServer, requires_rtsp_server

UNSAFE = " #/?@:%&=+;!$'()*,[]\"<>\\^`{|}~\t"
HAND_PICKED = [
    "p@ss w#rd/?",
    "a:b:c@d",
    "50%off",
    "%zz%",
    "ends with space ",
    "x://y@z",
    "[::1]:554",
    "ünïcødé-pässwörd",
    "slash/at@hash#query?",
    "trailing@",
    "@leading",
    "semi;colon,comma",
    "quote'\"back\\slash",
]


def nasty_passwords(n: int = 40, seed: int = 8) -> list[str]:
    """The hand-picked passwords plus seeded random ones built mostly from URL-unsafe characters.

    Left out: passwords that are valid percent-encoding (``a%41b`` reads as ``aAb``: documented)."""
    rng = random.Random(seed)
    alphabet = UNSAFE + "abcXYZ019-_."
    out = list(HAND_PICKED)
    while len(out) < n:
        pw = "".join(rng.choice(alphabet) for _ in range(rng.randint(4, 16)))
        if pw.strip() and not ("%" in pw and not re.search(r"%(?![0-9A-Fa-f]{2})", pw)):
            out.append(pw)
    return out


NASTY = nasty_passwords()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def assert_hidden(password: str, *texts: str) -> None:
    for text in texts:
        assert password not in text, f"password {password!r} leaked in {text!r}"


# -- parsing -----------------------------------------------------------------------------------------


def test_kinds_and_names(tmp_path):
    assert (parse(0).kind, parse(0).device, parse(" 2 ").device) == ("webcam", 0, 2)
    assert parse("rtsp://cam/live").kind == "network" and parse("HTTPS://cam/x").is_network
    assert parse("ftp://cam/x").kind == "url"
    assert parse("clip.mp4").kind == "path" and not parse("clip.mp4").is_live
    assert str(parse(f"file://{tmp_path}").path) == str(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    assert parse(tmp_path).resolve().kind == "images"
    assert parse(tmp_path / "a.jpg").resolve().kind == "image"
    assert parse(tmp_path / "b.mp4").resolve().kind == "file"
    with pytest.raises(MaskwatchError, match="^source not found: .*nope.mp4$"):
        parse(tmp_path / "nope.mp4").resolve()
    for nothing in ("", "   ", None, True):
        with pytest.raises(MaskwatchError):
            parse(nothing)
    assert parse(parse("0")) == parse("0")  # a SourceSpec passes through


def test_check_is_the_pipelines_precheck(tmp_path):
    from maskwatch.pipeline import precheck_source

    for bad, fragment in [("rtsp://ca m/x", "whitespace"), ("ftp://cam/x", "unsupported URL scheme"),
                          (str(tmp_path / "missing.mp4"), "source not found")]:
        with pytest.raises(MaskwatchError, match=fragment):
            precheck_source(bad)
    precheck_source("3")  # a webcam index: nothing to check before opening
    precheck_source("rtsp://u:p@cam:554/live")


@pytest.mark.parametrize("password", NASTY)
def test_raw_password_is_parsed_encoded_and_hidden(password):
    url = f"rtsp://admin:{password}@cam.local:554/live?channel=1"
    spec = parse(url)
    assert spec.kind == "network" and spec.password == password
    assert spec.name == "rtsp://admin:***@cam.local:554/live?channel=1"
    parts = urlsplit(spec.url)  # what FFmpeg gets: a URL any parser reads the same way
    assert (parts.hostname, parts.port, parts.path, parts.query) == ("cam.local", 554, "/live", "channel=1")
    assert (unquote(parts.username), unquote(parts.password)) == ("admin", password)
    assert_hidden(password, spec.name, repr(spec), str(spec), redact(url))
    # the desktop app's password field: split off, put back, same URL for FFmpeg
    shown, split = split_password(url)
    assert (shown, split) == ("rtsp://admin@cam.local:554/live?channel=1", password)
    assert parse(with_password(shown, split)).url == spec.url


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_query_string_secrets_are_credentials(key):
    password = "s3cr et#/@?:"  # raw, in a query value (runs to the next "&")
    url = f"http://cam:8080/snap.cgi?user=admin&{key.upper()}={password}&res=hd"
    spec = parse(url)
    assert spec.name == f"http://cam:8080/snap.cgi?user=admin&{key.upper()}=***&res=hd"
    assert spec.password == password
    assert unquote(urlsplit(spec.url).query.split("&")[1].split("=", 1)[1]) == password
    assert urlsplit(spec.url).hostname == "cam"
    assert_hidden(password, spec.name, repr(spec), redact(url))
    assert "hunter22" not in redact(f"GET /x?{key}=hunter22")
    shown, split = split_password(url)
    assert (shown, split) == (f"http://cam:8080/snap.cgi?user=admin&{key.upper()}=&res=hd", password)
    assert parse(with_password(shown, split)).url == spec.url


MISTYPED = [
    "rtsp:/admin:{pw}@cam.local:554/live",  # one slash
    "rtsp//admin:{pw}@cam.local:554/live",  # no colon
    "admin:{pw}@10.0.0.7:554/live",  # no scheme at all
    "RTSP:///admin:{pw}@cam/live?channel=1",  # three slashes
]


@pytest.mark.parametrize("template", MISTYPED)
def test_mistyped_urls_never_show_the_password(template, tmp_path):
    """Regression: text without a well-formed ``scheme://`` was a path, and its password was
    printed in "source not found: ..." and kept in the app's recent sources."""
    from PyQt6.QtCore import QSettings

    from maskwatch.gui.settings import GuiSettings

    settings = GuiSettings(QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    for password in NASTY:
        text = template.format(pw=password)
        spec = parse(text)
        with pytest.raises(MaskwatchError) as info:
            spec.check()
        message = str(info.value)
        assert message.startswith("malformed URL ") and "\n" not in message
        assert ":***@" in message
        shown, split = split_password(text)
        assert split == password and shown == text.replace(f":{password}@", "@")
        settings.add_recent(text)
        assert_hidden(password, message, spec.name, repr(spec), redact(text), redact(f"open {text} failed"), shown,
                      *settings.all_values().values())
    assert settings.recent_sources()[0] == template.replace(":{pw}@", "@")


def test_a_missing_file_is_not_a_mistyped_url(tmp_path):
    for name in ("clip.mp4", "icon@2x.png", "C:/videos/a.mp4"):
        with pytest.raises(MaskwatchError, match="^source not found: "):
            parse(str(tmp_path / name) if "/" not in name else name).check()
    weird = tmp_path / "cam:1@front.jpg"  # a real file may look like one: it is not touched
    weird.write_bytes(b"x")
    assert parse(str(weird)).resolve().kind == "image" and split_password(str(weird)) == (str(weird), "")
    assert redact(f"cannot read image: {tmp_path}/icon@2x.png") == f"cannot read image: {tmp_path}/icon@2x.png"


def test_a_raw_query_secret_in_free_text_is_hidden_to_the_next_ampersand():
    # where a raw value ends cannot be known (it may hold a space): hidden to "&" or the line's end
    assert redact("GET /snap?pwd=ab cd&chn=1 HTTP/1.1") == "GET /snap?pwd=***&chn=1 HTTP/1.1"
    assert redact("GET /snap?pwd=ab cd\nnext line") == "GET /snap?pwd=***\nnext line"
    for key in ("pw", "psw", "loginpas", "loginpass", "user_password"):
        assert redact(f"/snapshot.cgi?loginuse=admin&{key}=hunter 22") == f"/snapshot.cgi?loginuse=admin&{key}=***"


def test_redact_keeps_what_is_not_a_credential():
    for text in ("rtsp://viewer@cam/live", "rtsp://cam:554/live", "no url here: user:pw",
                 "monkey=3 keystone=4 bypass=5", "min_score=0.5"):
        assert redact(text) == text
    assert redact(redact("rtsp://a:b@c/d")) == "rtsp://a:***@c/d"
    # a password parsed once is hidden in a credential's slot later, also where it breaks the URL
    # patterns (a space, a "#"), in a URL or as a query value ...
    parse("rtsp://admin:Zebra#42 horse@cam/live")
    assert redact("opening rtsp://admin:Zebra#42 horse@cam/live failed") == "opening rtsp://admin:***@cam/live failed"
    assert redact("GET /snap?pwd=Zebra#42 horse") == "GET /snap?pwd=***"
    # ... but text is not searched for it: a path that contains the password stays whole (issue 18:
    # password "secret", password_file "secrets/nope.txt" was shown as "***s/nope.txt")
    parse("rtsp://admin:secret@cam/live")
    assert redact("password_file /etc/maskwatch/secrets/nope.txt: not found") == \
        "password_file /etc/maskwatch/secrets/nope.txt: not found"
    assert redact("cannot open rtsp://admin:secret@cam/live") == "cannot open rtsp://admin:***@cam/live"


def test_percent_encoded_passwords_are_decoded_once():
    assert parse("rtsp://admin:p%40ss%3Aw0rd@cam/live").password == "p@ss:w0rd"
    assert parse("rtsp://admin:100%@cam/live").password == "100%"  # not valid encoding: literal
    assert parse(with_password("rtsp://admin@cam/live", "a%41b")).password == "a%41b"  # the GUI's field is exact


USERINFO = ["", "admin@", "admin:{pw}@", ":{pw}@"]
QUERIES = ["", "?ch=1", "?token={tk}", "?usr=admin&pwd={pw2}&ch=1", "?pwd={pw2}&token={tk}", "?pwd=&token={tk}",
           "?token=&ch=1"]


@pytest.mark.parametrize("userinfo", USERINFO)
@pytest.mark.parametrize("query", QUERIES)
def test_every_secret_goes_back_to_its_own_slot(userinfo, query):
    """Regression: ``rtsp://a:pw@cam/x?token=abc`` came back as ``token=pw``, without the
    userinfo password, ``abc`` lost (one password field, the first secret kept, the first empty
    slot filled)."""
    for pw, pw2, tk in [("p@ss w#rd/?", "s3cr et#", "t0k/en%zz"), *zip(NASTY[13:19], NASTY[19:25], NASTY[25:31])]:
        if "&" in pw2 + tk or "@" in pw2 + tk:
            continue  # a raw "&" ends a query value, a raw "@" in one ends the userinfo (the module's docstring)
        url = f"rtsp://{userinfo}cam.local:554/live{query}".format(pw=pw, pw2=pw2, tk=tk)
        shown, creds = split_credentials(url)
        secrets = [x for x, slot in ((pw, "{pw}"), (pw2, "{pw2}"), (tk, "{tk}")) if slot in userinfo + query]
        assert_hidden(pw, repr(creds))
        for secret in secrets:
            assert_hidden(secret, shown)
        assert parse(with_credentials(shown, creds)).url == parse(url).url  # every secret in its slot
        if not secrets:
            assert (shown, creds) == (url, Credentials())
            continue
        # the app: the field holds the primary secret; editing it changes that slot only
        assert creds.primary == secrets[0]
        edited = url.replace(f":{pw}@", ":N3w pass@") if "{pw}" in userinfo else url.replace(f"={secrets[0]}", "=N3w pass", 1)
        assert parse(with_credentials(shown, creds.with_primary("N3w pass"))).url == parse(edited).url


def test_one_password_goes_to_the_userinfo_when_there_is_a_user_name():
    assert with_password("rtsp://a@cam/x?token=", "pw") == "rtsp://a:pw@cam/x?token="
    assert with_password("http://cam/x?user=a&pwd=", "pw") == "http://cam/x?user=a&pwd=pw"
    assert with_password("http://cam/x?pwd=&token=", "pw") == "http://cam/x?pwd=pw&token="
    assert with_password("ftp://a@cam/x", "pw") == "ftp://a@cam/x"
    assert with_credentials("clip.mp4", Credentials("pw")) == "clip.mp4"


def test_the_password_field_helpers():
    assert is_network_url("rtsp://x") and not is_network_url("0") and not is_network_url("ftp://x")
    assert strip_password("http://u:p@cam/x?pwd=q") == "http://u@cam/x?pwd="
    assert with_password("0", "pw") == "0" and with_password("rtsp://cam/x", "") == "rtsp://cam/x"


def test_display_path_never_fails_to_print():
    import os

    name = display_path(os.fsdecode(b"/tmp/caf\xe9 \xff.jpg"))
    assert name == "/tmp/caf\\xe9 \\xff.jpg"
    name.encode("ascii")  # printable anywhere


# -- the real error paths --------------------------------------------------------------------------


FAST = SourceConfig(open_timeout_s=1.0, read_timeout_s=0.5, stall_timeout_s=0.5, backoff_initial_s=0.1,
                    backoff_max_s=0.1, max_reconnects=1)


@pytest.mark.parametrize("template", [
    "rtsp://admin:{pw}@cam:99999/live",  # port out of range
    "rtsp://admin:{pw}@cam:abc/live",  # port not a number
    "rtsp://admin:{pw}@:554/live",  # no host
    "rtsp://admin:{pw}@ca m/live",  # whitespace in the host
    "ftp://admin:{pw}@cam/live",  # unsupported scheme
    "http://cam:99999/snap?user=admin&pwd={pw}",  # bad port, password in the query
])
def test_malformed_urls_never_show_the_password(template, caplog):
    caplog.set_level(logging.DEBUG)
    for password in NASTY:
        if "&" in password and "pwd=" in template:
            continue  # a raw "&" ends a query value: no parser can tell it from the next parameter
        with pytest.raises(MaskwatchError) as info:
            open_source(template.format(pw=password))
        message = str(info.value)
        assert "\n" not in message and message.startswith(("malformed URL", "unsupported URL scheme"))
        assert_hidden(password, message, *(r.getMessage() for r in caplog.records))


def test_unreachable_camera_never_shows_the_password(caplog, capfd):
    """A closed port: the reader fails, reconnects once, gives up; name, errors, logs, native output."""
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    passwords = NASTY[:12]
    sources = [open_source(f"rtsp://admin:{pw}@127.0.0.1:{port}/live", FAST) for pw in passwords]
    sources.append(open_source(f"http://127.0.0.1:{port}/snap.cgi?user=admin&pwd={NASTY[0]}", FAST))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(s.state is not SourceState.ENDED for s in sources):
            time.sleep(0.05)
        assert all(s.state is SourceState.ENDED and s.last_error for s in sources)
        shown = [s.name for s in sources] + [repr(s) for s in sources] + [s.last_error for s in sources]
    finally:
        for s in sources:
            s.close()
    out, err = capfd.readouterr()
    logged = [r.getMessage() for r in caplog.records]
    assert any("admin:***@127.0.0.1" in m for m in logged)
    for password in passwords:
        assert_hidden(password, out, err, *shown, *logged)


def test_pipeline_error_for_an_unreachable_camera_never_shows_the_password():
    from maskwatch.pipeline import Pipeline

    class NoFaces:
        def detect(self, image):
            return Faces.empty()

        def close(self):
            pass

    port = closed_port()
    for password in NASTY[:6]:
        config = Config(source=f"rtsp://admin:{password}@127.0.0.1:{port}/live", model=TINY_MODEL, sources=FAST)
        with pytest.raises(MaskwatchError) as info:
            with Pipeline(config, detector=NoFaces()) as pipeline:
                list(pipeline)
        assert str(info.value).startswith(f"cannot open rtsp://admin:***@127.0.0.1:{port}/live")
        assert_hidden(password, str(info.value))


def test_headless_run_never_prints_the_password(tmp_path):
    """The whole process: one error line on stderr, nothing of the password anywhere."""
    port = closed_port()
    for password in ["p@ss w#rd/?:%x", "x://y@z;!", NASTY[-1]]:
        url = f"rtsp://admin:{password}@127.0.0.1:{port}/live"
        log = tmp_path / "counts.csv"
        r = run_cli("--headless", "--source", url, "--model", TINY_MODEL, "--log", log, "--max-reconnects", "0", timeout=90)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"maskwatch: error: cannot open rtsp://admin:***@127.0.0.1:{port}/live")
        assert_hidden(password, r.stdout, r.stderr, log.read_text() if log.exists() else "")
        r = run_cli("--headless", "--source", url.replace(str(port), "99999"), timeout=60)
        assert r.returncode == 2 and "malformed URL rtsp://admin:***@127.0.0.1:99999/live" in r.stderr
        assert_hidden(password, r.stdout, r.stderr)
    for mistyped in ("rtsp:/admin:{pw}@127.0.0.1/live", "admin:{pw}@127.0.0.1:554/live"):  # no scheme://
        password = "p@ss w#rd/?:%x"
        r = run_cli("--headless", "--source", mistyped.format(pw=password), timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith("maskwatch: error: malformed URL " + mistyped.format(pw="***").split("/live")[0])
        assert_hidden(password, r.stdout, r.stderr)


@requires_rtsp_server
@pytest.mark.parametrize("password", ["p@ss w#rd/?:%x", "50%off&=+;!", "x://y@z"])
def test_rtsp_camera_accepts_a_raw_pasted_password(password, capfd):
    config = SourceConfig(open_timeout_s=5.0, read_timeout_s=2.0, stall_timeout_s=2.0, backoff_initial_s=0.2)
    with RtspServer(FIXTURES / "clip_320x240.mp4", user="admin", password=password) as server:
        raw = server.url
        assert f"admin:{password}@" in raw  # pasted as is, nothing encoded
        with open_source(raw, config) as source:
            frame = source.read(timeout=10.0)
            assert frame is not None and frame.image.shape == (240, 320, 3)
            assert source.name == f"rtsp://admin:***@127.0.0.1:{server.port}/stream"
    out, err = capfd.readouterr()
    assert_hidden(password, out, err)


def test_spec_repr_has_no_secret_fields():
    spec = parse("rtsp://admin:topsecret@cam/live")
    assert isinstance(spec, SourceSpec) and "topsecret" not in repr(spec) and "***" in repr(spec)
    assert spec.password == "topsecret"

