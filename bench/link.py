"""Link-mode figures: VSAT round trips per flow, throughput through the simulator, offline upload.

    python bench/link.py vsat [--flows 10]
        Starts its own network (one BNI bank process and the switch, SQLite in a temp dir,
        loopback only). Per flow: a terminal signs on through the VSAT profile (real speed, seeded
        loss), then Cek and Bayar. Counts the ISO exchanges of Cek + Bayar and their wall time,
        against the goal: 2 round trips, wall time at most 2 x RTT + 100 ms (RTT: the mean
        measured round trip of the flow's own exchanges).

    python bench/link.py throughput --switch 127.0.0.1:8583 [--seconds 15] [--concurrency 1024] [--rounds 3] [--kpm 1000]
        Against a running network (`sembako up`): `sembako bench purchase` straight to the switch,
        and through a link-simulator proxy on the online profile (its delays and jitter; loss and
        cuts off, since a lost frame costs the closed-loop bench a 10 s timeout), `--rounds` times
        in turn, the order swapped each round (the network slows as its journal grows). Reports
        each run, the proxy's CPU per purchase, and the ratio of the median rates (goal: at least
        90 %). Each run is a closed loop, so the link's round trip holds
        rate x RTT requests in flight (about 130 at 1,400/s and 90 ms) that the network does not
        see (Little's law): the default concurrency keeps the network saturated either way, as a
        province's thousands of terminals do, so that the ratio shows what the simulator costs
        and not the round trip itself. A run's declines are reported: 51s mean the demo cards
        are spent (give `sembako up --kpm` and `--kpm` more cards).

    python bench/link.py offline [--sales 10000]
        Starts its own network (the switch as a process of its own); one terminal makes `--sales` offline sales, the link returns
        (online profile, seeded, no loss), and it uploads and settles. Reports the time of the
        upload and settlement, the batches, and checks each sale was posted once (ledger check).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_seconds, free_port, machine, stop, wait_healthy  # noqa: E402
from bank_penyalur.demo import generator  # noqa: E402
from edc_terminal.batchjob import DEFAULT_WINDOW, WINDOW_MAX  # noqa: E402
from edc_terminal.client import ClientConfig, SwitchClient  # noqa: E402
from edc_terminal.core import CoreConfig  # noqa: E402
from edc_terminal.headless import Request, open_core, run_job, session  # noqa: E402
from edc_terminal.inspector import Inspector  # noqa: E402
from edc_terminal.linking import core_config  # noqa: E402
from linksim import DIRECT, ONLINE, VSAT, LinkProxy  # noqa: E402
from shared.banks import get_bank  # noqa: E402
from shared import aio  # noqa: E402
from shared.clock import SystemClock  # noqa: E402

BNI = get_bank("bni")
NETWORK_KPM = 60
AMOUNT_IDR = 5_000
GOAL_EXTRA_MS = 100


def _own_network(tmp: Path, kpm: int = NETWORK_KPM):  # noqa: ANN202
    from tests.switch.network import Network

    network = Network(tmp, {"data_dir": tmp}, kpm=kpm)
    network.ops_api = False
    return network.start()


class _SwitchProcess:
    """The network's banks, with the switch as a process of its own (as `sembako up` runs it),
    so the terminal, the link proxy and the switch do not share one interpreter."""

    def __init__(self, tmp: Path, kpm: int) -> None:
        from tests.switch.network import Network

        self.network = Network(tmp, {"data_dir": tmp}, kpm=kpm)
        self.tmp = tmp
        self.iso_port, ops_port = free_port(), free_port()
        self.network.prepare_banks()
        for bank in self.network.banks.values():
            bank.start()
        urls = json.dumps({code: bank.url for code, bank in self.network.banks.items()})
        command = [sys.executable, "-m", "sembako", "switch", "serve", "--port", str(self.iso_port),
                   "--ops-port", str(ops_port), "--data-dir", str(tmp)]  # fmt: skip
        env = {**os.environ, "SEMBAKO_SWITCH_BANK_URLS": urls}
        self.switch = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_healthy(f"http://127.0.0.1:{ops_port}")

    def balance_of(self, pan: str) -> int:
        return self.network.balance_of(pan)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by the switch and by the banks (together)."""
        banks = sum(cpu_seconds(bank.process.pid) for bank in self.network.banks.values() if bank.process)
        return {"switch": cpu_seconds(self.switch.pid), "banks": banks}

    def assert_ledger_balanced(self) -> None:
        self.network.assert_ledger_balanced()

    def stop(self) -> None:
        stop(self.switch)
        for bank in self.network.banks.values():
            bank.stop()


# -- VSAT: round trips per flow ---------------------------------------------------------------------


async def _vsat_flow(iso_port: int, data_dir: Path, serial: int, seed: int, card: generator.GeneratedKpm) -> dict:
    proxy = await LinkProxy("127.0.0.1", 0, "127.0.0.1", iso_port, VSAT, seed=seed).start()
    inspector = Inspector()
    core = open_core(BNI.terminal_id(serial), data_dir, SystemClock(), core_config(VSAT, CoreConfig()))
    try:
        async with SwitchClient("127.0.0.1", proxy.port, ClientConfig(connect_timeout_ms=5_000)) as client:
            signed_on = await session(core, client, Request("signon"), inspector)
            start = len(inspector.exchanges)
            started_s = time.perf_counter()
            cek = await session(core, client, Request("cek", card.pan, card.pin), inspector)
            bayar = await session(core, client, Request("bayar", card.pan, card.pin, AMOUNT_IDR), inspector)
            wall_ms = (time.perf_counter() - started_s) * 1000
    finally:
        await proxy.stop()
    flow = inspector.exchanges[start:]
    rtts = [e.rtt_ms for e in flow if e.rtt_ms is not None]
    rtt_ms = statistics.fmean(rtts) if rtts else None
    return {
        "seed": seed,
        "signed_on": signed_on.approved,
        "cek_rc": cek.rc,
        "bayar_rc": bayar.rc,
        "round_trips": len(flow),
        "mtis": [e.request_mti for e in flow],
        "wall_ms": round(wall_ms, 1),
        "rtt_ms_mean": round(rtt_ms, 1) if rtt_ms else None,
        "within_goal": bool(rtt_ms) and len(flow) == 2 and wall_ms <= 2 * rtt_ms + GOAL_EXTRA_MS,
    }


def bench_vsat(flows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        network = _own_network(Path(tmp))
        try:
            cards = [p for p in (generator.generated_kpm(BNI, i) for i in range(NETWORK_KPM)) if p.spendable]
            runs = [
                asyncio.run(_vsat_flow(network.iso_port, Path(tmp) / f"edc-{n}", 11 + n, seed=n + 1, card=cards[n % len(cards)]))
                for n in range(flows)
            ]
        finally:
            network.stop()
    clean = [r for r in runs if r["cek_rc"] == r["bayar_rc"] == "00"]
    return {
        "bench": "link vsat",
        "profile": {"rtt_ms": VSAT.rtt_ms, "jitter_ms": VSAT.jitter_ms, "loss": VSAT.loss, "bandwidth_bytes_per_s": VSAT.bandwidth_bytes_per_s},
        "flows": flows,
        "flows_both_approved": len(clean),
        "flows_within_goal": sum(r["within_goal"] for r in runs),
        "round_trips_of_approved_flows": sorted({r["round_trips"] for r in clean}),
        "wall_ms_median": statistics.median(r["wall_ms"] for r in clean) if clean else None,
        "runs": runs,
    }


# -- throughput through the simulator -----------------------------------------------------------------


def _bench_purchase(switch: str, seconds: float, concurrency: int, kpm: int, data_dir: Path) -> dict:
    command = [
        sys.executable, "-m", "sembako", "bench", "purchase", "--switch", switch, "--seconds", str(seconds),
        "--concurrency", str(concurrency), "--kpm", str(kpm), "--data-dir", str(data_dir), "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _through_proxy(host: str, port: int, seconds: float, concurrency: int, kpm: int, data_dir: Path) -> dict:
    steady = replace(ONLINE, loss=0.0, disconnect_rate=0.0)
    async with LinkProxy("127.0.0.1", 0, host, port, steady, seed=1) as proxy:
        cpu_before_s = time.process_time()  # this process runs only the proxy meanwhile
        result = await asyncio.to_thread(_bench_purchase, f"127.0.0.1:{proxy.port}", seconds, concurrency, kpm, data_dir)
        proxy_cpu_s = time.process_time() - cpu_before_s
        return result | {"proxy_cpu_ms_per_purchase": round(proxy_cpu_s * 1000 / max(result["requests"], 1), 3)}


def bench_throughput(switch: str, seconds: float, concurrency: int, kpm: int, data_dir: Path, rounds: int) -> dict:
    """`rounds` pairs of runs, direct and through the proxy, the pair's order swapped each round
    (direct first, then the proxy first, ...), so that a drift of the machine or of the network
    (its journal and ledgers grow with every run) falls on both sides alike; the ratio is of the
    medians."""
    host, _, port = switch.rpartition(":")
    direct, online = [], []
    for round_index in range(rounds):
        pair = [
            lambda: direct.append(_bench_purchase(switch, seconds, concurrency, kpm, data_dir)),
            lambda: online.append(aio.run(_through_proxy(host, int(port), seconds, concurrency, kpm, data_dir))),
        ]
        for run in pair if round_index % 2 == 0 else reversed(pair):
            run()
    direct_tps = statistics.median(r["tps"] for r in direct)
    online_tps = statistics.median(r["tps"] for r in online)
    figures = ("tps", "p50_ms", "p99_ms", "approved", "declined", "errors")
    return {
        "bench": "link throughput",
        "concurrency": concurrency,
        "rounds": rounds,
        "direct": [{k: r[k] for k in figures} for r in direct],
        "online_profile": [{k: r[k] for k in (*figures, "proxy_cpu_ms_per_purchase")} for r in online],
        "direct_tps_median": direct_tps,
        "online_tps_median": online_tps,
        "ratio": round(online_tps / direct_tps, 3) if direct_tps else None,
        "goal": ">= 0.90",
    }


# -- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    vsat = sub.add_parser("vsat")
    vsat.add_argument("--flows", type=int, default=10)
    throughput = sub.add_parser("throughput")
    throughput.add_argument("--switch", default="127.0.0.1:8583")
    throughput.add_argument("--seconds", type=float, default=15.0)
    throughput.add_argument("--concurrency", type=int, default=1024)
    throughput.add_argument("--kpm", type=int, default=1_000)
    throughput.add_argument("--data-dir", type=Path, default=Path("data"))
    throughput.add_argument("--rounds", type=int, default=3, help="Pairs of runs, direct then through the proxy")
    offline = sub.add_parser("offline")
    offline.add_argument("--sales", type=int, default=10_000)
    offline.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=f"Messages in flight during upload (at most {WINDOW_MAX})")
    offline.add_argument("--link", choices=("online", "direct"), default="online", help="Profile of the link the upload takes")
    args = parser.parse_args(argv)
    if args.what == "vsat":
        result = bench_vsat(args.flows)
    elif args.what == "throughput":
        result = bench_throughput(args.switch, args.seconds, args.concurrency, args.kpm, args.data_dir, args.rounds)
    else:
        result = bench_offline(args.sales, args.window, args.link)
    print(json.dumps(result | {"machine": machine()}, indent=2))
    return 0


OFFLINE_KPM = 160  # enough cards that 10,000 sales of Rp1.000 stay within each card's monthly offline limit
OFFLINE_SALE_IDR = 1_000


def _offline_sale(core, card: generator.GeneratedKpm) -> bool:  # noqa: ANN001
    core.insert_card(card.pan)
    core.choose_purchase()
    core.enter_amount(str(OFFLINE_SALE_IDR))
    core.enter_nik(card.record.nik)
    approved = core.outcome is not None and core.outcome.approved
    core.finish() if core.state.value == "result" else core.cancel()
    return approved


def _cpu_s(network: _SwitchProcess) -> dict[str, float]:
    """CPU seconds so far of the switch, the banks and this process (the terminal and the proxy)."""
    return network.cpu_s() | {"terminal and proxy": time.process_time()}


async def _offline_run(network, data_dir: Path, sales: int, window: int, link: str) -> dict:  # noqa: ANN001
    cards = [p for p in (generator.generated_kpm(BNI, i) for i in range(OFFLINE_KPM)) if p.spendable]
    before = {c.pan: network.balance_of(c.pan) for c in cards}
    steady = replace(ONLINE, loss=0.0, disconnect_rate=0.0) if link == "online" else DIRECT
    proxy = await LinkProxy("127.0.0.1", 0, "127.0.0.1", network.iso_port, steady, seed=1).start()
    core = open_core(BNI.terminal_id(20), data_dir, SystemClock(), core_config(steady, CoreConfig(card_list=True)))
    try:
        config = ClientConfig(connect_timeout_ms=5_000, max_in_flight=window)
        async with SwitchClient("127.0.0.1", proxy.port, config) as client:
            assert (await session(core, client, Request("signon"))).approved
            core.set_link_state(False)
            started_s = time.perf_counter()
            approved = sum(_offline_sale(core, cards[n % len(cards)]) for n in range(sales))
            stored_s = time.perf_counter() - started_s
            core.set_link_state(True)
            job = core.start_settlement()
            started_s, cpu_before = time.perf_counter(), _cpu_s(network)
            result = await run_job(job, client, window=window)
            settle_s, cpu_after = time.perf_counter() - started_s, _cpu_s(network)
            core.finish()
    finally:
        await proxy.stop()
        core.close()
    spent = {c.pan: 0 for c in cards}
    for n in range(approved):
        spent[cards[n % len(cards)].pan] += OFFLINE_SALE_IDR
    after = {c.pan: network.balance_of(c.pan) for c in cards}
    network.assert_ledger_balanced()
    return {
        "sales_approved_offline": approved,
        "store_s": round(stored_s, 2),
        "upload_and_settle_s": round(settle_s, 2),
        "settlement_rc": result.rc,
        "advices_sent": result.advices_sent,
        "batches_settled": len(result.batches_settled),
        "steps": [(s.batch, s.processing, s.rc) for s in result.steps][:3],
        "cpu_ms_per_advice": {part: round((cpu_after[part] - cpu_before[part]) * 1000 / max(result.advices_sent, 1), 3) for part in cpu_after},
        "each_posted_once": all(after[pan] == before[pan] - spent[pan] for pan in before),
        "ledger_balanced": True,
        "goal": "upload + settlement of 10,000 advices within 5 s",
    }


def bench_offline(sales: int, window: int, link: str) -> dict:
    """`window` above the switch's `inflight_per_connection_max` (512 by default) needs
    SEMBAKO_SWITCH_INFLIGHT_PER_CONNECTION_MAX raised too: the switch bounds each connection."""
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        network = _SwitchProcess(Path(tmp), kpm=OFFLINE_KPM)
        try:
            figures = aio.run(_offline_run(network, Path(tmp) / "edc", sales, window, link))
        finally:
            network.stop()
    inflight_max = network.network.switch_settings().inflight_per_connection_max
    profile = "online (no loss)" if link == "online" else "direct (the proxy passes frames through)"
    return {"bench": "link offline", "profile": profile, "sales": sales, "window": window,
            "switch_inflight_per_connection_max": inflight_max, **figures}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
