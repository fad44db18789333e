"""A lesson's own network: the scenario runner's, in a temporary directory, with the cashier's
counter on its terminal.

`Sandbox.start` plays the lesson's world as a scenario (`scenarios.runner`): banks and the switch
as processes of their own on ephemeral ports, their data in a temporary directory (never the
user's data directory), the cards written in their situations, the terminal behind its seeded
link simulator and signed on, then the `setup` steps (a disbursement, a link gone offline). The
cashier's counter is then built on that terminal, as the scenario runner's own counter is
(`scenarios.terminal.Terminal.cart`): the same EDC core and inspector, a `Link` through the same
link simulator, the e-Warong's books of the scenario. World steps of a lesson step go through the
runner's step code (`play_world`), so a link cut or a card replaced is what a scenario does.

Everything runs in the caller's event loop (the app's): the link simulator is an asyncio server.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import sys
import tempfile
from pathlib import Path

from edc_terminal.linking import PROXY_HOST
from edc_terminal.terminal import EdcTerminal, Link
from scenarios import launcher
from scenarios.model import Step
from scenarios.network import Card, masked
from scenarios.runner import PASS, RunOptions, ScenarioResult, StepResult, ScenarioPlayer
from scenarios.terminal import CONNECT_TIMEOUT_MS
from shared.cards import mask_pan

from .events import LessonCounter, Sink
from .lesson import CardFacts
from .model import Lesson


class SandboxError(RuntimeError):
    """The lesson's network could not start, or a world step failed (card numbers masked)."""


def fork_server_ready() -> None:
    """Start the scenario launcher's fork server (once per process) with a real file as stderr.

    Its resource tracker inherits `sys.stderr`'s file descriptor; an app that captures
    sys.stderr (Textual does) holds none, and the fork would fail. The tracker writes to
    /dev/null instead of the participant's screen."""
    captured = sys.stderr
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        sys.stderr = devnull
        try:
            launcher.forkserver()  # its context, with the services' modules preloaded
            multiprocessing.forkserver.ensure_running()
        finally:
            sys.stderr = captured


class Sandbox:
    """One lesson's network and counter. `await start()`, then `counter`; `await stop()` at the end."""

    def __init__(self, lesson: Lesson, sink: Sink, tmp_root: Path | None = None) -> None:
        self.lesson = lesson
        self.sink = sink
        self._tmp_root = tmp_root
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._player: ScenarioPlayer | None = None
        self.counter: LessonCounter | None = None
        self.edc: EdcTerminal | None = None

    @property
    def data_dir(self) -> Path:
        assert self._tmp is not None, "started"
        return Path(self._tmp.name)

    @property
    def cards(self) -> dict[str, Card]:
        return dict(self._player.cards) if self._player is not None else {}

    def card_facts(self) -> dict[str, CardFacts]:
        """What guidance texts say of each card (`{siti.kks}`)."""
        return {name: CardFacts(c.pan, mask_pan(c.pan), c.pin, c.nik, self._holder(c)) for name, c in self.cards.items()}

    def _holder(self, card: Card) -> str:
        spec = next((p for p in self.lesson.people if p.card_name == card.name), None)
        return spec.kpm_name if spec is not None and spec.kpm_name else card.name.replace("_", " ").title()

    def card_name(self, pan: str) -> str | None:
        """The lesson's name of the card with number `pan` (None: not a card of the lesson)."""
        return next((name for name, card in self.cards.items() if card.pan == pan.strip()), None)

    async def start(self) -> None:
        """Start the network, play the setup, build the counter; raises SandboxError."""
        self._tmp = tempfile.TemporaryDirectory(prefix=f"sembako-training-{self.lesson.id}-", dir=self._tmp_root)
        scenario = self.lesson.scenario().model_copy(update={"steps": self.lesson.setup})
        result = ScenarioResult(scenario.name, f"lesson {self.lesson.id}", scenario.network.seed)
        self._player = ScenarioPlayer(scenario, self.data_dir, scenario.network.seed, RunOptions(), result)
        try:
            fork_server_ready()
            await self._player.play()
        except Exception as exc:  # noqa: BLE001 - any failure to start is the sandbox's error
            await self.stop()
            raise SandboxError(masked(f"jaringan latihan gagal dimulai: {type(exc).__name__}: {exc}")) from exc
        failure = result.failure()
        if failure is not None:
            await self.stop()
            raise SandboxError(masked(f"persiapan pelajaran gagal: {failure}"))
        tid = self.lesson.terminal_id
        terminal = self._player.terminals[tid]
        assert terminal.core is not None and terminal.proxy is not None
        link = Link(PROXY_HOST, terminal.proxy.port, CONNECT_TIMEOUT_MS)
        link.simulator = terminal.proxy  # the status line shows the profile; offline means no link
        self.edc = EdcTerminal(terminal.core, link, self._player.clock, terminal.inspector)
        shops = self._player.shops
        self.counter = LessonCounter(shops.store(), shops.shop_of(tid), self.edc, self._player.clock, sink=self.sink)

    async def play_world(self, steps: tuple[Step, ...]) -> None:
        """The world steps of a lesson step, through the scenario runner; raises SandboxError."""
        player = self._player
        assert player is not None, "started"
        for index, step in enumerate(steps):
            record = StepResult(index, step.name or step.action, step.action, named=step.name is not None)
            await player.play_step(step, record)  # the runner's own step code
            if record.status != PASS:
                raise SandboxError(masked(f"langkah dunia '{step.action}' gagal: {record.failure()}"))

    async def stop(self) -> None:
        """Stop the terminal's line, the network, and remove the temporary directory."""
        try:
            if self.edc is not None:
                await self.edc.link.close()
            if self._player is not None:
                await self._player.shutdown()
        finally:
            self._player, self.edc, self.counter = None, None, None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
