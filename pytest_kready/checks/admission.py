"""Image references: parsing as the container runtime does (Docker Hub defaults), mutable tags, and the
registry allow-list of ``--kready-allowed-registries``."""

from __future__ import annotations

import dataclasses

DOCKER_HUB = "docker.io"


@dataclasses.dataclass(frozen=True)
class ImageRef:
    registry: str
    path: str  # repository path inside the registry (library/x for Docker Hub official images)
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.path}"

    @property
    def mutable(self) -> bool:
        """Untagged (means :latest) or :latest, and not pinned by digest."""
        return self.digest is None and self.tag in (None, "latest")


def parse(image: str) -> ImageRef:
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, remainder = first, rest
    else:
        registry, remainder = DOCKER_HUB, name
        if "/" not in remainder:
            remainder = f"library/{remainder}"
    last = remainder.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        remainder, _, tag = remainder.rpartition(":")
    return ImageRef(registry.lower(), remainder, tag, digest or None)


def unparsed_repository(image: str) -> str:
    """``image`` as written, without its tag and digest."""
    name = image.partition("@")[0]
    head, _, last = name.rpartition("/")
    last = last.partition(":")[0]
    return f"{head}/{last}" if head else last


def allowed(image: str, allow_list: tuple[str, ...]) -> bool:
    """True when ``image`` comes from an entry of ``allow_list`` (a registry host, or a registry/path prefix
    matched at a path boundary)."""
    ref = parse(image)
    full = ref.repository
    for entry in allow_list:
        entry = entry.lower().rstrip("/")
        if entry in ("docker.io", "index.docker.io", "registry-1.docker.io") and ref.registry == DOCKER_HUB:
            return True
        if full == entry or full.startswith(entry + "/"):
            return True
    return False


def outside_images(probe_image: str, allow_list: tuple[str, ...]) -> dict[str, str | None]:
    """Attack images outside the allow-list (None where a variant would be inside it)."""
    ref = parse(probe_image)
    tail = ref.path.rsplit("/", 1)[-1]
    tag = f"@{ref.digest}" if ref.digest else f":{ref.tag or '1.0'}"
    entry = allow_list[0].rstrip("/") if allow_list else "registry.example"
    host, _, prefix = entry.partition("/")
    lookalike = (f"{entry}-kready-lookalike/{tail}{tag}" if prefix
                 else f"{host}.kready-lookalike.example.com/{ref.path}{tag}")
    candidates = {
        "untrusted-registry": f"kready-untrusted.example.com/{ref.path}{tag}",
        "docker-hub-short-name": f"{tail}{tag}",
        "lookalike-registry": lookalike,
    }
    return {k: (None if allowed(v, allow_list) else v) for k, v in candidates.items()}


def mutable_images(probe_image: str) -> dict[str, str]:
    repo = unparsed_repository(probe_image)
    return {"latest": f"{repo}:latest", "untagged": repo}
