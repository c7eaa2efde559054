"""site.toml (maskwatch.site.config): cameras, defaults, secrets, [db], [mqtt], [serve]; one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from maskwatch.errors import MaskwatchError
from maskwatch.site.config import ServeSettings, SiteConfig

PASSWORD = "Sup3r-s3cret/pw@x"  # raw "@" and "/": must be percent-encoded into the URL, never shown


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str, monkeypatch=None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MaskwatchError) as info:
        SiteConfig.load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_cameras_defaults_and_relative_paths(tmp_path):
    path = write(tmp_path, """
[defaults]
interval_s = 5
detector.every_n = 3
blur_faces = "others"

[[cameras]]
name = "entrance"
source = "clips/door.mp4"
log = "out/entrance.csv"
snapshots = "snaps/entrance"

[[cameras]]
name = "shop-floor_2"
source = "rtsp://viewer@10.0.0.8:554/live"
interval_s = 30
retain_days = 14
tracker = { vote_window = 5 }
""")
    site = SiteConfig.load(path)
    entrance, shop = site.cameras
    assert (entrance.name, shop.name) == ("entrance", "shop-floor_2")
    assert entrance.config.source == str(tmp_path / "clips" / "door.mp4")  # next to site.toml, not the cwd
    assert entrance.config.log == tmp_path / "out" / "entrance.csv"
    assert entrance.config.snapshots == tmp_path / "snaps" / "entrance"
    assert (entrance.config.interval_s, entrance.config.detector.every_n, entrance.config.blur_faces) == (5, 3, "others")
    assert (shop.config.interval_s, shop.config.detector.every_n, shop.config.retain_days) == (30, 3, 14)
    assert (shop.config.tracker.vote_window, shop.config.tracker.min_votes) == (5, 5)
    assert shop.config.source == "rtsp://viewer@10.0.0.8:554/live"
    assert site.db_url == f"sqlite:///{tmp_path / 'maskwatch.db'}"  # the default database: next to site.toml
    assert site.mqtt is None
    assert site.serve == ServeSettings()


@pytest.mark.parametrize("how", ["password", "password_env", "password_file"])
def test_camera_password_from_toml_env_or_file(tmp_path, monkeypatch, how):
    monkeypatch.setenv("MW_TEST_CAM_PW", PASSWORD)
    (tmp_path / "cam.secret").write_text(PASSWORD + "\n")
    value = {"password": PASSWORD, "password_env": "MW_TEST_CAM_PW", "password_file": str(tmp_path / "cam.secret")}[how]
    site = SiteConfig.load(write(tmp_path, f"""
[[cameras]]
name = "door"
source = "rtsp://admin@10.0.0.7:554/live"
{how} = "{value}"
"""))
    camera = site.cameras[0]
    assert camera.config.source == "rtsp://admin:Sup3r-s3cret%2Fpw%40x@10.0.0.7:554/live"
    assert camera.shown_source == "rtsp://admin:***@10.0.0.7:554/live"
    assert PASSWORD not in repr(site) and "Sup3r" not in repr(site)


def test_db_url_password_and_mqtt(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_DB_PW", PASSWORD)
    monkeypatch.setenv("MW_TEST_MQTT_PW", PASSWORD)
    site = SiteConfig.load(write(tmp_path, """
[[cameras]]
name = "door"
source = "door.mp4"

[db]
url = "postgresql+psycopg://maskwatch@db.lan/site"
password_env = "MW_TEST_DB_PW"

[mqtt]
host = "broker.lan"
prefix = "shop1"
username = "mw"
password_env = "MW_TEST_MQTT_PW"

[serve]
restart_backoff_initial_s = 0.5
restart_backoff_max_s = 8
"""))
    assert site.db_url == "postgresql+psycopg://maskwatch:Sup3r-s3cret%2Fpw%40x@db.lan/site"
    assert site.shown_db_url == "postgresql+psycopg://maskwatch:***@db.lan/site"
    assert (site.mqtt.host, site.mqtt.prefix) == ("broker.lan", "shop1")
    assert (site.serve.restart_backoff_initial_s, site.serve.restart_backoff_max_s) == (0.5, 8.0)
    assert PASSWORD not in repr(site)


def test_db_plain_path_and_relative_sqlite_url_are_next_to_site_toml(tmp_path):
    camera = '[[cameras]]\nname = "a"\nsource = "a.mp4"\n'
    assert SiteConfig.load(write(tmp_path, camera + '[db]\nurl = "data/h.db"\n')).db_url == f"sqlite:///{tmp_path}/data/h.db"
    assert SiteConfig.load(write(tmp_path, camera + '[db]\nurl = "sqlite:///h.db"\n')).db_url == f"sqlite:///{tmp_path}/h.db"


@pytest.mark.parametrize("text, expected", [
    ('[[cameras]]\nname = "a b"\nsource = "x.mp4"\n', "cameras[0].name must be letters, digits"),
    ('[[cameras]]\nname = "a/#"\nsource = "x.mp4"\n', "(it is an MQTT topic level)"),
    ('[[cameras]]\nsource = "x.mp4"\n', "cameras[0].name must be"),
    ('[[cameras]]\nnmae = "corridor"\nsource = "x.mp4"\n', "cameras[0]: unknown key 'nmae' (a camera takes name, source"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\nintervl_s = 5\n', "unknown config key intervl_s"),
    ('[[cameras]]\nname = "a"\n', "camera 'a': source is missing"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\n[[cameras]]\nname = "a"\nsource = "y.mp4"\n', "camera name 'a' is used twice"),
    ('[defaults]\ninterval_s = 1\n', "no [[cameras]]"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\ninterval_s = -1\n', "camera 'a': interval_s must be a number >= 0.001"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\nlog_file = "x.csv"\n', "camera 'a': unknown config key log_file"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\nblur_faces = "yes"\n', "camera 'a': blur_faces must be one of off, others, all"),
    ('[defaults]\ndetector.every_n = 0\n[[cameras]]\nname = "a"\nsource = "x.mp4"\n', "camera 'a': detector.every_n must be an integer >= 1"),
    ('[defaults]\nsource = "x.mp4"\n[[cameras]]\nname = "a"\nsource = "x.mp4"\n', "[defaults] cannot set source"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\npassword = "pw123456"\n', "camera 'a': a password is given but source is not a camera URL"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\nlog = "same.csv"\n'
     '[[cameras]]\nname = "b"\nsource = "y.mp4"\nlog = "same.csv"\n', "cameras 'a' (log) and 'b' (log) both write"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\nsnapshots = "s"\n'
     '[[cameras]]\nname = "b"\nsource = "y.mp4"\nsnapshots = "s"\n', "cameras 'a' (snapshots) and 'b' (snapshots) both write"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\nlog = "a.csv"\nevents = "a.csv"\n', "camera 'a': log and events are the same file"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\n[db]\nurl = "nonsense://"\nuser = "x"\n', "[db]: unknown key 'user'"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\n[serve]\nrestart_backoff_max_s = 0\n', "[serve]: restart_backoff_max_s must be a number of seconds"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\n[serve]\nrestart_backoff_initial_s = 9\nrestart_backoff_max_s = 2\n',
     "restart_backoff_initial_s must be <= restart_backoff_max_s"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\n[mqtt]\nhost = "b"\nqos = 2\n', "[mqtt]: unknown key 'qos'"),
    ('[[cameras]]\nname = "a"\nsource = "x.mp4"\n[camera]\n', "unknown key 'camera'"),
    ('[[cameras]\n', "is not valid TOML"),
])
def test_errors_are_one_line_naming_the_file_and_key(tmp_path, text, expected):
    message = load_error(tmp_path, text)
    assert expected in message
    assert str(tmp_path / "site.toml") in message or message.startswith("config file")


def test_password_never_in_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_CAM_PW", PASSWORD)
    # the password in the URL and again as password_env: an error that must not repeat either
    message = load_error(tmp_path, f"""
[[cameras]]
name = "door"
source = "rtsp://admin:{PASSWORD}@10.0.0.7/live"
password_env = "MW_TEST_CAM_PW"
""")
    assert "source already has a password" in message and PASSWORD not in message and "Sup3r" not in message
    message = load_error(tmp_path, f"""
[[cameras]]
name = "door"
source = "rtsp://admin@10.0.0.7/live"
password_env = "MW_TEST_CAM_PW"
interval_s = "{PASSWORD}"
""")
    assert "interval_s" in message  # the value shown is the bad one the user typed, not a secret from elsewhere
    message = load_error(tmp_path, """
[[cameras]]
name = "door"
source = "rtsp://admin@10.0.0.7/live"
password_env = "MW_TEST_UNSET_PW"
""")
    assert "camera 'door': password_env names MW_TEST_UNSET_PW, which is not set" in message
    message = load_error(tmp_path, f"""
[[cameras]]
name = "door"
source = "x.mp4"
[db]
url = "postgresql+psycopg://u:{PASSWORD}@h/db"
password = "{PASSWORD}"
""")
    assert "[db]: url already has a password" in message and PASSWORD not in message


def test_serve_reports_a_bad_site_file_in_one_line(tmp_path, monkeypatch):
    path = write(tmp_path, f"""
[[cameras]]
name = "door"
source = "rtsp://admin:{PASSWORD}@10.0.0.7/live"
interval_s = 0
""")
    result = run_cli("serve", "--config", path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskwatch: error: config file "), result.stderr
    assert "camera 'door': interval_s must be" in lines[0]
    assert PASSWORD not in result.stderr + result.stdout
    missing = run_cli("serve", "--config", tmp_path / "nope.toml")
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_the_example_in_docs_site_md_loads(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[2] / "docs" / "site.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("ENTRANCE_PASSWORD", PASSWORD)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "corridor.txt").write_text("c0rridor-pw\n")  # relative to site.toml, not the cwd
    monkeypatch.chdir("/")
    site = SiteConfig.load(write(tmp_path, example))
    entrance, corridor = site.cameras
    assert entrance.config.source == "rtsp://admin:Sup3r-s3cret%2Fpw%40x@10.0.0.7:554/Streaming/Channels/102"
    assert corridor.config.source == "rtsp://viewer:c0rridor-pw@10.0.0.8/live"
    assert (entrance.config.detector.every_n, corridor.config.detector.every_n) == (2, 3)
    assert corridor.config.sources.stall_timeout_s == 10.0
    assert (corridor.config.blur_faces, corridor.config.retain_days) == ("others", 30)
    assert entrance.config.snapshots == tmp_path / "snapshots" / "entrance"
    assert site.db_url == f"sqlite:///{tmp_path / 'history.db'}"
    assert (site.mqtt.host, site.mqtt.port, site.mqtt.prefix) == ("127.0.0.1", 1883, "maskwatch")
    assert site.serve == ServeSettings()


def test_db_sqlite_url_with_tilde_is_in_home_and_odd_file_names_stay_names(tmp_path, monkeypatch):
    import sqlalchemy as sa

    from maskwatch.site.history import History

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    camera = '[[cameras]]\nname = "a"\nsource = "a.mp4"\n'
    site = SiteConfig.load(write(tmp_path, f'[db]\nurl = "sqlite:///~/x.db"\n{camera}'))
    assert sa.make_url(site.db_url).database == str(tmp_path / "home" / "x.db")  # was "~/x.db": a folder named ~
    with History(site.db_url):
        pass
    assert (tmp_path / "home" / "x.db").is_file() and not (tmp_path / "~").exists()
    site = SiteConfig.load(write(tmp_path, f'[db]\nurl = "odd?name#1.db"\n{camera}'))  # a plain path, not a URL
    assert sa.make_url(site.db_url).database == str(tmp_path / "odd?name#1.db")


@pytest.mark.parametrize("content", [None, "dir", b"\xff\xfe not utf-8", b"[cameras\n", b"a = 1\na = 2\n"])
def test_site_and_camera_files_are_read_by_one_reader_with_one_set_of_messages(tmp_path, content):
    import maskwatch.config
    import maskwatch.site.config
    from maskwatch.config import Config

    assert maskwatch.site.config.read_toml is maskwatch.config.read_toml
    path = tmp_path / "site.toml"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    messages = []
    for load in (Config.from_toml, SiteConfig.load):
        with pytest.raises(MaskwatchError) as info:
            load(path)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "site.toml" in messages[0] and "\n" not in messages[0]
