"""``make bench``: run every benchmark, each in its own interpreter, and write bench/results/summary.json.

Each benchmark writes its own JSON under bench/results/; the summary repeats the headline figures and
points at the files. A benchmark that fails is recorded as such (with the end of its output) and the
others still run; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import RESULTS, ROOT, machine, write_result

Headline = Callable[[dict[str, Any]], dict[str, Any]]


def _startup(result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"users_{entry['users']}": {
            "warm_seconds_best": entry["warm_seconds_best"],
            "warm_rss_mib": entry["warm_rss_mib"],
        }
        for entry in result["results"]
    }


def _imports(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "marginal_us_best": result["marginal_us"]["best"],
        "marginal_us_median": result["marginal_us"]["median"],
        "msgraph_us_median": result["msgraph_us"]["median"],
        "ratio_to_msgraph_median": result["ratio_to_msgraph_median"],
        "ratio_to_msgraph_best": result["ratio_to_msgraph_best"],
        "ratio_to_msgraph_in_instructions": (result["instructions"] or {}).get("ratio"),
        "goals_met": all(result["goals"].values()),
        "lazy_sdks_not_imported": result["lazy_sdks_not_imported"]["ok"],
    }


def _warm(result: dict[str, Any]) -> dict[str, Any]:
    during = result["tenant_during_measurement"]
    return {
        "app_median_ms": result["app"]["median_ms"],
        "app_p95_ms": result["app"]["p95_ms"],
        "graph_direct_median_ms": result["graph_direct"]["median_ms"],
        "graph_direct_p95_ms": result["graph_direct"]["p95_ms"],
        "overhead_median_pct": result["overhead"]["median_pct"],
        "overhead_min_to_min_ms": result["overhead"]["min_to_min_ms"],
        "server_side_overhead_median_ms": result["server_side"]["app_overhead_over_graph_median_ms"],
        "entra_token_requests_during": during["entra_token_requests"],
        "key_vault_requests_during": during["key_vault_requests"],
        "with_50ms_graph_latency_overhead_median_pct": result["with_graph_latency"]["overhead"]["median_pct"],
        "with_50ms_graph_latency_goal_met": result["with_graph_latency"]["goal_overhead_at_most_10_pct"],
    }


def _stampede(result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]
    return {
        "goal_met_every_round": result["goal_met_every_round"],
        "threads": result["PYTHON_THREADPOOL_THREAD_COUNT"],
        "vault_secret_reads": [r["tenant_log"]["vault_secret_reads"] for r in rounds],
        "app_token_requests": [r["tenant_log"]["app_token_requests"] for r in rounds],
        "managed_identity_token_requests": [
            r["tenant_log"]["managed_identity_token_requests"] for r in rounds
        ],
        "latency_median_ms": [r["latency"]["median_ms"] for r in rounds],
    }


def _signin(result: dict[str, Any]) -> dict[str, Any]:
    warm = result["warm_api_me"]
    return {
        "sign_in_token_requests": result["second_sign_in_warm_process"]["token_requests"],
        "warm_me_median_ms": warm["latency"]["median_ms"],
        "warm_me_p95_ms": warm["latency"]["p95_ms"],
        "warm_me_graph_calls_per_request": warm["graph_calls_per_request"],
        "warm_me_token_requests": warm["token_requests"],
        "warm_me_discovery_requests": warm["discovery_requests"],
        "goals_met": all(result["goals"].values()),
    }


def _sessions(result: dict[str, Any]) -> dict[str, Any]:
    figures = result["results"]
    return {
        "load_median_ms": figures["load"]["median_ms"],
        "load_p95_ms": figures["load"]["p95_ms"],
        "load_and_save_changed_median_ms": figures["load_and_save_changed"]["median_ms"],
        "load_and_save_changed_p95_ms": figures["load_and_save_changed"]["p95_ms"],
        "load_and_save_unchanged_median_ms": figures["load_and_save_unchanged"]["median_ms"],
        "vault_requests_during": result["vault_requests_during_measurement"],
        "cookie_value_chars": result["cookie_value_chars"],
    }


def _flow_table(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "anonymous_requests": result["anonymous_requests"],
        "flow_table_rows": result["flow_table_rows"],
        "requests_per_second": result["requests_per_second"],
        "goals_met": all(result["goals"].values()),
    }


def _mail(result: dict[str, Any]) -> dict[str, Any]:
    warm, audit = result["warm_reads"], result["audit_write"]
    return {
        "warm_read_median_ms": warm["client_latency"]["median_ms"],
        "graph_calls_per_warm_read": warm["graph_calls_per_read"],
        "goal_one_graph_call_per_read": warm["goal_one_graph_call_per_read"],
        "goal_at_most_one_check_per_period": result["scope_cache_period"][
            "goal_at_most_one_check_per_period"
        ],
        "audit_insert_median_ms": audit["insert"]["median_ms"],
        "audit_share_median_pct": audit["share_of_request_median_pct"],
        "audit_share_p95_pct": audit["share_of_request_p95_pct"],
        "audit_share_with_50ms_graph_median_pct": audit["with_graph_latency"]["share_of_request_median_pct"],
    }


def _report(result: dict[str, Any]) -> dict[str, Any]:
    large = result["sizes"]["100000"]
    return {
        "ratio_to_floor_100k": large["ratio_to_floor"],
        "report_seconds_100k": large["report_seconds"],
        "floor_seconds_100k": large["floor_seconds"],
        "peak_rss_mib_1k": result["sizes"]["1000"]["peak_rss_mib"],
        "peak_rss_mib_100k": large["peak_rss_mib"],
        "peak_rss_growth_mib": result["peak_rss_growth_1k_to_100k_mib"],
        "throttled_10pct_exact_rows": large["throttled_10pct"]["exact"],
        "serving_growth_mib_sas_vs_worker": [
            large["serving_users_csv"]["sas_redirect"]["growth_mib"],
            large["serving_users_csv"]["through_worker"]["growth_mib"],
        ],
    }


def _tenants(result: dict[str, Any]) -> dict[str, Any]:
    warm, cold = result["requests"]["warm"], result["requests"]["cold_first_request"]
    slow, base = result["fan_out"]["one_organisation_slow"], result["fan_out"]["baseline"]
    return {
        "organisations": result["requests"]["organisations"],
        "warm_ratio_multi_to_single_median": warm["ratio_median"],
        "warm_token_requests": warm["token_requests_during"],
        "cold_first_request_median_ms": cold["median_ms"],
        "memory_per_organisation_kib": result["requests"]["memory_per_organisation"]["traced_kib"],
        "fan_out_queue_messages": base["queue_messages"],
        "fan_out_seconds": base["fan_out_seconds"],
        "others_own_run_median_ms_baseline_vs_one_slow": [
            base["others_own_run"]["median_ms"],
            slow["others_own_run"]["median_ms"],
        ],
    }


def _on_behalf_of(result: dict[str, Any]) -> dict[str, Any]:
    bearer, cookie = result["warm_bearer_same_token"], result["warm_session_cookie"]
    burst = result["concurrent_first_calls_one_person"]
    return {
        "warm_bearer_median_ms": bearer["latency"]["median_ms"],
        "warm_cookie_median_ms": cookie["latency"]["median_ms"],
        "warm_bearer_token_requests_per_call": bearer["token_requests_per_call"],
        "warm_bearer_graph_calls_per_call": bearer["graph_calls_per_call"],
        "fifty_first_calls_exchanges": burst["exchanges_sent_to_entra"],
        "goals_met": all(result["goals"].values()),
    }


def _ingestion_webhook(result: dict[str, Any]) -> dict[str, Any]:
    load, e2e = result["webhook_load"], result["end_to_end"]
    return {
        "cold_validation_worst_seconds": result["cold_validation"]["worst_seconds"],
        "cold_validation_goal_met": result["cold_validation"]["goal_met"],
        "webhook_rate_per_second": load["achieved_rate_per_second"],
        "webhook_server_p50_ms": load["server_time_to_202"]["median_ms"],
        "webhook_server_p99_ms": load["server_time_to_202"]["p99_ms"],
        "request_path_p50_ms": result["request_path_in_process"]["time_to_accept"]["median_ms"],
        "request_path_p99_ms": result["request_path_in_process"]["time_to_accept"]["p99_ms"],
        "end_to_end_median_ms": e2e["arrival_to_event"]["median_ms"],
        "end_to_end_p99_ms": e2e["arrival_to_event"]["p99_ms"],
        "end_to_end_exactly_once": e2e["exactly_once"],
    }


def _rich(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "basic_post_median_ms": result["request_path_basic_post"]["median_ms"],
        "rich_post_median_ms": result["request_path_rich_post"]["median_ms"],
        "decrypt_median_ms": result["worker_decrypt_item"]["median_ms"],
    }


def _ingestion(result: dict[str, Any]) -> dict[str, Any]:
    full, window = result["exactly_once_at_scale"], result["crashes_in_the_window"]
    return {
        "messages": full["messages"],
        "events": full["events"],
        "exactly_once": full["exactly_once"],
        "lost": full["lost"],
        "failed_run_share": full["failed_run_share"],
        "catch_up_seconds": full.get("outage", {}).get("catch_up_seconds"),
        "window_crash_copies": window["duplicates"],
        "window_copies_share_event_id": window["same_event_id_for_each_copy"],
    }


#: (module, result file, headline extractor)
BENCHMARKS: list[tuple[str, str, Headline]] = [
    ("bench.emulator_startup", "emulator-startup.json", _startup),
    ("bench.import_time", "import-time.json", _imports),
    ("bench.warm_users", "warm-users.json", _warm),
    ("bench.stampede", "stampede.json", _stampede),
    ("bench.sessions", "sessions.json", _sessions),
    ("bench.signin", "signin.json", _signin),
    ("bench.on_behalf_of", "on-behalf-of.json", _on_behalf_of),
    ("bench.flow_table", "flow-table.json", _flow_table),
    ("bench.mail", "mail.json", _mail),
    ("bench.report", "report.json", _report),
    ("bench.tenants", "tenants.json", _tenants),
    ("bench.ingestion_webhook", "ingestion_webhook.json", _ingestion_webhook),
    ("bench.ingestion", "ingestion.json", _ingestion),
    ("bench.rich_notifications", "rich_notifications.json", _rich),
]
#: Benchmarks that take longer than the default 900 s (10,000 messages through the whole pipeline).
LONG_RUNNING = {"bench.ingestion": 2400}


def run(module: str, result_file: str, headline: Headline) -> dict[str, Any]:
    path = RESULTS / result_file
    before = path.stat().st_mtime if path.exists() else None
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=LONG_RUNNING.get(module, 900),
        check=False,
    )
    entry: dict[str, Any] = {
        "module": module,
        "file": f"bench/results/{result_file}",
        "seconds": round(time.perf_counter() - started, 1),
        "ok": completed.returncode == 0 and path.exists() and path.stat().st_mtime != before,
    }
    if entry["ok"]:
        entry["headline"] = headline(json.loads(path.read_text()))
    else:
        entry["returncode"] = completed.returncode
        entry["output_tail"] = (completed.stdout + completed.stderr)[-2000:]
    print(f"{module}: {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']} s", flush=True)
    return entry


def main() -> int:
    entries = [run(*benchmark) for benchmark in BENCHMARKS]
    summary = {"machine": machine(), "benchmarks": {entry["module"]: entry for entry in entries}}
    print(write_result("summary", summary))
    print(json.dumps({e["module"]: e.get("headline") for e in entries}, indent=2))
    return 0 if all(entry["ok"] for entry in entries) else 1


if __name__ == "__main__":
    raise SystemExit(main())
