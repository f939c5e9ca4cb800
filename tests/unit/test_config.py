"""Settings: precedence of defaults < file < environment < overrides, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerogate.config import ConfigError, Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zerogate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    return caught.value


# --- values and precedence -------------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.data_dir == Path("zerogate-data")
    assert settings.database_url is None
    assert settings.listen_host == "127.0.0.1"
    assert settings.control_port == 8443
    assert settings.gateway_port == 8444
    assert settings.public_hostnames == ("localhost",)
    assert settings.app_domain == "zerogate.localhost"
    assert settings.ca_key is None
    assert settings.log_level == "info"
    assert settings.log_format == "json"


def test_default_derived_values() -> None:
    settings = load_settings(None, environ={})
    assert settings.effective_ca_key_file == Path("zerogate-data") / "ca" / "kek"
    assert settings.control_url == "https://localhost:8443"
    url = settings.effective_database_url
    assert url.startswith("sqlite:///")
    assert url.endswith("zerogate-data/zerogate.db")


def test_file_values_are_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'data_dir = "/var/lib/zg"\n'
        "control_port = 9000\n"
        'public_hostnames = ["zg.example.com", "alt.example.com"]\n'
        'app_domain = "Apps.Example.COM."\n'
        'log_level = "debug"\n'
        'database_url = "postgresql+psycopg://zg@db/zg"\n',
    )
    settings = load_settings(path, environ={})
    assert settings.data_dir == Path("/var/lib/zg")
    assert settings.control_port == 9000
    assert settings.gateway_port == 8444  # untouched default
    assert settings.public_hostnames == ("zg.example.com", "alt.example.com")
    assert settings.app_domain == "apps.example.com"  # normalised
    assert settings.log_level == "debug"
    assert settings.effective_database_url == "postgresql+psycopg://zg@db/zg"


def test_file_named_by_zerogate_config_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "gateway_port = 7001\n")
    settings = load_settings(None, environ={"ZEROGATE_CONFIG": str(path)})
    assert settings.gateway_port == 7001


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'control_port = 9000\nlog_level = "debug"\n')
    settings = load_settings(
        path, environ={"ZEROGATE_CONTROL_PORT": "9100", "ZEROGATE_LOG_FORMAT": "text"}
    )
    assert settings.control_port == 9100
    assert settings.log_level == "debug"  # file value survives where env is silent
    assert settings.log_format == "text"


def test_overrides_beat_environment_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "control_port = 9000\ngateway_port = 9001\n")
    settings = load_settings(
        path,
        environ={"ZEROGATE_CONTROL_PORT": "9100", "ZEROGATE_GATEWAY_PORT": "9101"},
        overrides={"control_port": 9200, "gateway_port": None},
    )
    assert settings.control_port == 9200
    assert settings.gateway_port == 9101  # a None override means "flag not given"


def test_tuple_environment_values_split_on_commas() -> None:
    environ = {"ZEROGATE_PUBLIC_HOSTNAMES": " a.example.com, b.example.com ,,c.example.com "}
    settings = load_settings(None, environ=environ)
    assert settings.public_hostnames == ("a.example.com", "b.example.com", "c.example.com")


def test_secret_from_environment_is_not_printed() -> None:
    settings = load_settings(None, environ={"ZEROGATE_CA_KEY": "very-secret-value"})
    assert settings.ca_key is not None
    assert settings.ca_key.get_secret_value() == "very-secret-value"
    assert "very-secret-value" not in repr(settings)


def test_empty_database_url_means_sqlite() -> None:
    settings = load_settings(None, environ={"ZEROGATE_DATABASE_URL": ""})
    assert settings.database_url is None


def test_settings_are_frozen() -> None:
    settings = load_settings(None, environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.control_port = 1  # type: ignore[misc]


# --- errors name their source ----------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "info"\n\ncontrol_port = = 3\n')
    error = config_error(path)
    assert error.key == "syntax"
    assert error.line == 3
    assert str(error).startswith(f"{path}:3: syntax: invalid TOML: ")


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "info"\n\ncontrol_port = = 3\n')
    error = config_error(path)
    assert error.source == str(path)
    assert error.key == "syntax"
    assert str(error).startswith(f"{path}")
    assert "syntax: invalid TOML: " in str(error)


def test_unknown_key_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "info"\n# comment\ncontrol_prot = 1\n')
    error = config_error(path)
    assert (error.source, error.line, error.key) == (str(path), 3, "control_prot")
    assert error.message == "unknown setting"
    assert str(error) == f"{path}:3: control_prot: unknown setting"


@pytest.mark.parametrize("value", ['"x"', "70000", "0", "-1"])
def test_wrong_port_reports_file_line_and_key(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f'log_level = "info"\ncontrol_port = {value}\n')
    error = config_error(path)
    assert (error.source, error.line, error.key) == (str(path), 2, "control_port")
    assert str(error).startswith(f"{path}:2: control_port: ")


def test_boolean_port_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "control_port = true\n")
    error = config_error(path)
    assert (error.line, error.key) == (1, "control_port")


def test_invalid_literal_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, '\n\nlog_level = "verbose"\n')
    error = config_error(path)
    assert (error.line, error.key) == (3, "log_level")


def test_quoted_key_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '\n"gateway_port" = 123456\n')
    error = config_error(path)
    assert (error.line, error.key) == (2, "gateway_port")


def test_unknown_table_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "info"\n\n[control]\nport = 1\n')
    error = config_error(path)
    assert (error.source, error.line, error.key) == (str(path), 3, "control")
    assert error.message == "unknown setting"


def test_bad_environment_variable_is_named() -> None:
    error = config_error(None, {"ZEROGATE_CONTROL_PORT": "not-a-port"})
    assert error.source == "environment variable ZEROGATE_CONTROL_PORT"
    assert error.key == "control_port"
    assert error.line is None
    assert str(error).startswith("environment variable ZEROGATE_CONTROL_PORT: control_port: ")


def test_environment_error_wins_over_good_file_value(tmp_path: Path) -> None:
    path = write(tmp_path, "control_port = 9000\n")
    error = config_error(path, {"ZEROGATE_CONTROL_PORT": "70000"})
    assert error.source == "environment variable ZEROGATE_CONTROL_PORT"


def test_bad_override_is_attributed_to_command_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={}, overrides={"log_format": "xml"})
    assert (caught.value.source, caught.value.key) == ("command line", "log_format")


def test_bad_hostname_in_environment_list() -> None:
    error = config_error(None, {"ZEROGATE_PUBLIC_HOSTNAMES": "ok.example.com,bad_host!"})
    assert error.source == "environment variable ZEROGATE_PUBLIC_HOSTNAMES"
    assert "bad_host!" in error.message


def test_bad_database_url_scheme(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "mysql://db/zg"\n')
    error = config_error(path)
    assert (error.line, error.key) == (1, "database_url")
    assert "sqlite" in error.message


def test_wildcard_app_domain_refused() -> None:
    error = config_error(None, {"ZEROGATE_APP_DOMAIN": "*.example.com"})
    assert error.key == "app_domain"


def test_app_domain_with_trailing_newline_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'app_domain = "example.com\\n"\n')
    error = config_error(path)
    assert error.key == "app_domain"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    error = config_error(path)
    assert (error.source, error.key) == (str(path), "file")
    assert str(error) == f"{path}: file: configuration file not found"


def test_missing_file_named_by_environment(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    error = config_error(None, {"ZEROGATE_CONFIG": str(path)})
    assert error.source == str(path)


def test_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'log_level = "\xe9"\n')
    error = config_error(path)
    assert (error.source, error.key) == (str(path), "file")
    assert error.message.startswith("cannot read: ")


def test_headers_to_strip_are_header_names_kept_in_lower_case(tmp_path: Path) -> None:
    path = write(tmp_path, 'gateway_strip_headers = ["X-WEBAUTH-USER", "Remote-Group"]\n')
    assert load_settings(path, environ={}).gateway_strip_headers == (
        "x-webauth-user",
        "remote-group",
    )
    bad = write(tmp_path, 'log_level = "info"\ngateway_strip_headers = ["X-User: root"]\n')
    error = config_error(bad)
    assert (error.line, error.key) == (2, "gateway_strip_headers")
    assert "'X-User: root' is not an HTTP header name" in error.message
