"""Records: the app's immutable value types (shared.core.records)."""

from __future__ import annotations

import pytest

from shared.core.records import Record
from shared.core.settings import Settings
from shared.identity import APPLICATIONS, Access

from .conftest import make_settings


class Point(Record, hidden=("secret",)):
    x: int
    y: int = 0
    secret: str = ""


def test_a_record_is_built_like_a_dataclass_and_cannot_change() -> None:
    point = Point(1, secret="s")
    assert (point.x, point.y, point.secret) == (1, 0, "s")
    assert Point(x=1, y=0, secret="s") == point and hash(Point(1, secret="s")) == hash(point)
    assert point != Point(2) and point._replace(y=5) == Point(1, 5, "s") and point.y == 0
    assert point._asdict() == {"x": 1, "y": 0, "secret": "s"} and Point._fields == ("x", "y", "secret")
    with pytest.raises(AttributeError, match="immutable"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.y
    assert repr(point) == "Point(x=1, y=0)"  # the hidden field is left out


def test_a_record_refuses_wrong_arguments() -> None:
    with pytest.raises(TypeError, match="missing"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected or repeated"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 3"):
        Point(1, 2, "s", 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="without a default"):

        class Bad(Record):
            a: int = 0
            b: int  # type: ignore[misc]


def test_post_init_validates() -> None:
    with pytest.raises(ValueError, match="app role"):
        Access(kinds=APPLICATIONS)
    access = Access(kinds=APPLICATIONS, app_role="r")
    assert isinstance(access.kinds, frozenset) and access._replace(audited=True).audited


def test_settings_repr_leaves_the_connection_string_out() -> None:
    settings = make_settings(AzureWebJobsStorage="DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0")
    assert settings.storage_connection and "AccountKey" not in repr(settings)
    assert "tenant_id=" in repr(settings) and Settings._field_defaults["graph_max_retries"] == 5
