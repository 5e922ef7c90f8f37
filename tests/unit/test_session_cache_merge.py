"""Three-way merge of MSAL token caches written concurrently: no lost update, newest tokens kept."""

from __future__ import annotations

import json
from typing import Any

from shared.signin.cache_merge import merge_token_caches

AT = "uid.utid-login.example-accesstoken-client-tenant-user.read"
AT_SP = "uid.utid-login.example-accesstoken-client-tenant-allsites.read"
RT = "uid.utid-login.example-refreshtoken-client--"


def cache(at: dict[str, Any] | None = None, rt: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "AccessToken": at or {},
        "RefreshToken": rt or {},
        "Account": {"uid.utid-login.example-tenant": {"username": "adele"}},
    }


def access(secret: str, cached_at: int) -> dict[str, Any]:
    return {"secret": secret, "cached_at": str(cached_at), "expires_on": str(cached_at + 3600)}


def refresh(secret: str, modified: int) -> dict[str, Any]:
    return {"secret": secret, "last_modification_time": str(modified)}


def merged(base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        merge_token_caches(json.dumps(base), json.dumps(mine), json.dumps(theirs))
    )
    return result


def test_both_refreshed_the_same_token_the_fresher_wins_whoever_writes_last() -> None:
    base = cache({AT: access("at0", 100)}, {RT: refresh("rt0", 100)})
    early = cache({AT: access("at1", 200)}, {RT: refresh("rt1", 200)})
    late = cache({AT: access("at2", 300)}, {RT: refresh("rt2", 300)})
    for mine, theirs in ((early, late), (late, early)):
        result = merged(base, mine, theirs)
        assert result["AccessToken"][AT]["secret"] == "at2"
        assert result["RefreshToken"][RT]["secret"] == "rt2"


def test_changes_to_different_entries_are_both_kept() -> None:
    base = cache({AT: access("at0", 100)}, {RT: refresh("rt0", 100)})
    mine = cache({AT: access("at0", 100), AT_SP: access("sp1", 200)}, {RT: refresh("rt0", 100)})
    theirs = cache({AT: access("at1", 210)}, {RT: refresh("rt1", 210)})
    result = merged(base, mine, theirs)
    assert result["AccessToken"][AT]["secret"] == "at1"  # theirs, untouched by me
    assert result["AccessToken"][AT_SP]["secret"] == "sp1"  # mine, re-applied
    assert result["RefreshToken"][RT]["secret"] == "rt1"
    assert result["Account"] == base["Account"]


def test_a_token_i_dropped_stays_dropped_unless_they_wrote_a_fresher_one() -> None:
    base = cache({AT: access("at0", 100), AT_SP: access("sp0", 100)})
    mine = cache({AT_SP: access("sp0", 100)})  # dropped AT after a claims challenge
    assert AT not in merged(base, mine, base)["AccessToken"]
    theirs = cache({AT: access("at1", 200), AT_SP: access("sp0", 100)})
    assert merged(base, mine, theirs)["AccessToken"][AT]["secret"] == "at1"


def test_ties_go_to_this_request_and_unreadable_input_yields_the_readable_side() -> None:
    base = cache({AT: access("at0", 100)})
    mine, theirs = cache({AT: access("mine", 200)}), cache({AT: access("theirs", 200)})
    assert merged(base, mine, theirs)["AccessToken"][AT]["secret"] == "mine"
    assert merge_token_caches("{}", "not json", json.dumps(theirs)) == json.dumps(theirs)
    assert merge_token_caches("{}", json.dumps(mine), "[]") == json.dumps(mine)
    assert json.loads(merge_token_caches("", json.dumps(mine), "{}")) == mine
