"""Settings from the environment as official container images read them: `NAME`, or for a
secret the file named by `NAME_FILE` (a Kubernetes or Compose secret mounted as a file)."""

from collections.abc import Mapping

from session_client.errors import SettingsError

FILE_SUFFIX = "_FILE"


def read_variable(source: Mapping[str, str], env: str, *, secret: bool) -> str | None:
    """The text of variable `env`, or for a secret of the file `env_FILE` names (one trailing
    newline dropped); both set, an unreadable or an empty file is a `SettingsError`."""
    raw = source.get(env)
    if not secret:
        return raw
    path = source.get(env + FILE_SUFFIX)
    if not path:
        return raw
    if raw:
        raise SettingsError(f"{env} and {env}{FILE_SUFFIX} are both set; set one of them")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SettingsError(
            f"{env}{FILE_SUFFIX}={path!r}: cannot read it ({exc.strerror or type(exc).__name__})"
        ) from None
    except UnicodeDecodeError:
        raise SettingsError(f"{env}{FILE_SUFFIX}={path!r}: not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise SettingsError(f"{env}{FILE_SUFFIX}={path!r}: the file is empty")
    return text
