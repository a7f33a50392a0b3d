"""Headless Chromium (Debian's ``chromium`` package; nothing is downloaded) for the HTML report's tests: the DOM
after the page's scripts ran (``--dump-dom``), a screenshot, and a small DOM tree to assert on."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium() -> str:
    """The chromium binary; a missing one is an error naming the package (the tests never skip)."""
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError("chromium is not installed: apt-get install -y chromium (Debian's package)")
    return path


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="kready-chromium-") as profile:
        argv = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def dump_dom(page: Path, timeout: float = 180) -> str:
    """The page's DOM after its scripts ran (pytest-html draws its tables in the browser)."""
    done = _run(["--virtual-time-budget=5000", "--dump-dom", Path(page).resolve().as_uri()], timeout)
    dom = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0 and "<html" in dom, done.stderr.decode("utf-8", "replace")[-2000:]
    return dom


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000, timeout: float = 180) -> Path:
    done = _run([f"--screenshot={Path(png).resolve()}", f"--window-size={width},{height}",
                 "--virtual-time-budget=5000", Path(page).resolve().as_uri()], timeout)
    assert done.returncode == 0 and Path(png).exists(), done.stderr.decode("utf-8", "replace")[-2000:]
    return Path(png)


def png_pixels(png: Path, max_rows: int = 600) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the RGB pixels of the first ``max_rows`` rows of an 8-bit RGB(A) PNG (what Chromium
    writes), decoded here (no imaging library)."""
    data = Path(png).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    stride = width * channels
    raw = zlib.decompressobj().decompress(idat, (stride + 1) * min(height, max_rows))
    pixels, prev = [], bytearray(stride)
    for y in range(min(height, max_rows)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels.extend(tuple(line[i:i + 3]) for i in range(0, stride, channels))
        prev = line
    return width, height, pixels


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None = None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag or '*'}> {cls or ''} {attrs} in the page"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(html_text: str) -> Node:
    """A DOM tree of ``html_text`` (enough to find elements by tag, class and attributes, and read text)."""
    builder = _Builder()
    builder.feed(html_text)
    builder.close()
    return builder.root
