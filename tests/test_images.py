"""tools/make_oci_image.py (OCI layout tarballs) and pytest_kready.local.images (import into containerd).

The unit tests check the layout, digests and determinism. The real tests start a throw-away containerd
(Debian's 1.6, its own root/state/socket under a temporary directory), import images made here and run
them with ``ctr run``; they need root, containerd, runc and gcc, and fail (never skip) without them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from pytest_kready.local import bins, runtime
from pytest_kready.local import images as images_mod
from pytest_kready.local.images import ImageImportError, image_tarballs, import_images, list_images, tarball_images

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_oci_image", ROOT / "tools" / "make_oci_image.py")
assert _spec and _spec.loader
moi = importlib.util.module_from_spec(_spec)
sys.modules["make_oci_image"] = moi
_spec.loader.exec_module(moi)

NAME = "registry.k8s.io/e2e-test-images/kready-test:1.0"


# ---- helpers --------------------------------------------------------------------------------------


def read_layout(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def blob(files: dict[str, bytes], digest: str) -> bytes:
    algo, hexd = digest.split(":")
    assert algo == "sha256"
    return files[f"blobs/sha256/{hexd}"]


def layer_members(layer: bytes, media_type: str) -> list[tarfile.TarInfo]:
    data = layer
    if media_type.endswith("+gzip"):
        import gzip

        data = gzip.decompress(layer)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def sample_image(tmp_path: Path, out: Path, **kw) -> "moi.ImageResult":
    src = tmp_path / "prog"
    if not src.exists():
        src.write_bytes(b"#!/bin/sh\necho hi\n")
        src.chmod(0o750)
    return moi.build_image(
        out,
        [NAME],
        files=[moi.FileEntry("/usr/bin/prog", source=src), moi.FileEntry("/etc/motd", content=b"hello\n", mode=0o600)],
        symlinks=[moi.Symlink("/bin/prog", "../usr/bin/prog")],
        dirs=[moi.Directory("/tmp", 0o1777), moi.Directory("/uploads")],
        xattrs={"/usr/bin/prog": {"security.capability": moi._capability_xattr(["cap_net_bind_service"])}},
        config=moi.ImageConfig(
            entrypoint=["/usr/bin/prog"],
            cmd=["serve"],
            env=["PATH=/usr/bin:/bin", "A=b"],
            user="65532:65532",
            exposed_ports=["53/udp", "8080"],
            working_dir="/tmp",
        ),
        **kw,
    )


# ---- make_oci_image: layout, digests, determinism -------------------------------------------------


def test_layout_is_valid_and_digests_match(tmp_path):
    out = tmp_path / "img.tar"
    res = sample_image(tmp_path, out)
    files = read_layout(out)

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == moi.MEDIA_INDEX
    [desc] = index["manifests"]
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": NAME, "io.containerd.image.name": NAME}
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert desc["mediaType"] == moi.MEDIA_MANIFEST and desc["digest"] == res.manifest_digest

    # every blob is stored under the sha256 of its content
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]

    manifest_bytes = blob(files, desc["digest"])
    assert len(manifest_bytes) == desc["size"]
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == moi.MEDIA_MANIFEST
    assert manifest["config"]["mediaType"] == moi.MEDIA_CONFIG
    config_bytes = blob(files, manifest["config"]["digest"])
    assert len(config_bytes) == manifest["config"]["size"]
    [layer_desc] = manifest["layers"]
    assert layer_desc["mediaType"] == moi.MEDIA_LAYER_GZIP
    layer = blob(files, layer_desc["digest"])
    assert len(layer) == layer_desc["size"] and layer_desc["digest"] == res.layer_digest

    config = json.loads(config_bytes)
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"] == {
        "Entrypoint": ["/usr/bin/prog"],
        "Cmd": ["serve"],
        "Env": ["PATH=/usr/bin:/bin", "A=b"],
        "User": "65532:65532",
        "ExposedPorts": {"53/udp": {}, "8080/tcp": {}},
        "WorkingDir": "/tmp",
    }
    import gzip

    raw = gzip.decompress(layer)
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}
    assert res.diff_id == config["rootfs"]["diff_ids"][0]


def test_layer_entries_sorted_owned_by_root_fixed_mtime(tmp_path):
    out = tmp_path / "img.tar"
    sample_image(tmp_path, out)
    files = read_layout(out)
    manifest = json.loads(blob(files, json.loads(files["index.json"])["manifests"][0]["digest"]))
    members = layer_members(blob(files, manifest["layers"][0]["digest"]), manifest["layers"][0]["mediaType"])
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names == ["bin", "bin/prog", "etc", "etc/motd", "tmp", "uploads", "usr", "usr/bin", "usr/bin/prog"]
    by = {m.name: m for m in members}
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 and m.uname == "" for m in members)
    assert by["tmp"].isdir() and stat.S_IMODE(by["tmp"].mode) == 0o1777
    assert by["usr"].isdir() and stat.S_IMODE(by["usr"].mode) == 0o755  # made parent
    assert by["bin/prog"].issym() and by["bin/prog"].linkname == "../usr/bin/prog"
    assert by["usr/bin/prog"].isfile() and stat.S_IMODE(by["usr/bin/prog"].mode) == 0o750  # the source's mode
    assert stat.S_IMODE(by["etc/motd"].mode) == 0o600
    cap = by["usr/bin/prog"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
    assert cap == bytes.fromhex("0100000200040000000000000000000000000000")  # setcap cap_net_bind_service+ep


def test_deterministic_byte_identical(tmp_path):
    a, b = tmp_path / "a" / "img.tar", tmp_path / "b" / "img.tar"
    ra = sample_image(tmp_path, a)
    os.utime(tmp_path / "prog", (1_000_000, 1_000_000))  # source mtimes do not matter
    rb = sample_image(tmp_path, b)
    assert a.read_bytes() == b.read_bytes()
    assert ra.manifest_digest == rb.manifest_digest
    # and different content gives a different image
    (tmp_path / "prog").write_bytes(b"#!/bin/sh\necho bye\n")
    rc = sample_image(tmp_path, tmp_path / "c.tar")
    assert rc.manifest_digest != ra.manifest_digest


def test_uncompressed_layer_and_several_names(tmp_path):
    out = tmp_path / "img.tar"
    res = moi.build_image(
        out, [NAME, "docker.io/library/other:2"], files=[moi.FileEntry("/x", content=b"x")], compress=False
    )
    assert res.layer_digest == res.diff_id
    assert tarball_images(out) == {NAME: res.manifest_digest, "docker.io/library/other:2": res.manifest_digest}
    files = read_layout(out)
    manifest = json.loads(blob(files, res.manifest_digest))
    assert manifest["layers"][0]["mediaType"] == moi.MEDIA_LAYER_TAR


@pytest.mark.parametrize(
    "names, files, message",
    [
        (["pause:3.10"], [], "fully qualified"),
        (["registry.k8s.io/pause"], [], "needs a tag"),
        ([NAME], [moi.FileEntry("relative", content=b"")], "absolute"),
        ([NAME], [moi.FileEntry("/a", content=b""), moi.FileEntry("/a/b", content=b"")], "not a directory"),
        ([NAME], [moi.FileEntry("/a", content=b"1"), moi.FileEntry("/a", content=b"2")], "conflicting"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, names, files, message):
    with pytest.raises(moi.ImageError, match=message):
        moi.build_image(tmp_path / "x.tar", names, files=files)
    assert not (tmp_path / "x.tar").exists()


def test_cli(tmp_path, capsys):
    src = tmp_path / "bin"
    src.write_bytes(b"\x7fELF")
    out = tmp_path / "out" / "p.tar"
    args = [
        "--name", "registry.k8s.io/pause:3.10.2", "-o", str(out), "--file", f"{src}:/pause:0755",
        "--symlink", "/bin/sh:busybox", "--dir", "/tmp:1777", "--text", "/etc/passwd:0644:root:x:0:0::/:/bin/sh\\n",
        "--cap", "/pause:cap_net_bind_service", "--entrypoint", '["/pause"]', "--user", "65535:65535",
        "--expose", "53/udp", "--env", "A=1", "--label", "k=v", "--print-digest",
    ]  # fmt: skip
    assert moi.main(args) == 0
    digest = capsys.readouterr().out.strip()
    assert tarball_images(out) == {"registry.k8s.io/pause:3.10.2": digest}
    files = read_layout(out)
    manifest = json.loads(blob(files, digest))
    config = json.loads(blob(files, manifest["config"]["digest"]))["config"]
    assert config["Entrypoint"] == ["/pause"] and config["User"] == "65535:65535" and config["Env"] == ["A=1"]
    assert config["Labels"] == {"k": "v"} and config["ExposedPorts"] == {"53/udp": {}}
    members = {m.name: m for m in layer_members(blob(files, manifest["layers"][0]["digest"]), moi.MEDIA_LAYER_GZIP)}
    assert stat.S_IMODE(members["pause"].mode) == 0o755
    # a second run writes the same bytes
    first = out.read_bytes()
    assert moi.main(args) == 0
    assert out.read_bytes() == first

    assert moi.main(["--name", NAME, "-o", str(out), "--file", "/nonexistent:/x"]) == 2
    assert moi.main(["--name", NAME, "-o", str(out), "--entrypoint", "/pause"]) == 2
    assert "JSON list" in capsys.readouterr().err


# ---- images.py with a stand-in ctr ---------------------------------------------------------------

FAKE_CTR = r"""#!{python}
import fcntl, json, os, sys
state = {state!r}
args = sys.argv[1:]
# one call at a time, as containerd's metadata store is transactional (import_images runs several at once)
lock = open(state + ".lock", "w")
fcntl.flock(lock, fcntl.LOCK_EX)
with open(state + ".calls", "a") as f:
    f.write(json.dumps(args) + "\n")
assert args[0] == "--address" and args[2] == "--namespace", args
images = json.load(open(state)) if os.path.exists(state) else {{}}
cmd = args[4:]
if cmd[:2] == ["images", "ls"]:
    print("REF TYPE DIGEST SIZE PLATFORMS LABELS")
    for name, digest in images.items():
        print(f"{{name}} application/vnd.oci.image.manifest.v1+json {{digest}} 1.0 KiB linux/amd64 -")
elif cmd[:2] == ["images", "import"]:
    import tarfile
    with tarfile.open(cmd[-1]) as t:
        index = json.load(t.extractfile("index.json"))
    for m in index["manifests"]:
        images[m["annotations"]["io.containerd.image.name"]] = m["digest"]
    json.dump(images, open(state, "w"))
else:
    sys.exit("unexpected " + " ".join(cmd))
"""


@pytest.fixture
def fake_ctr(tmp_path):
    state = tmp_path / "ctr-state.json"
    path = tmp_path / "ctr"
    path.write_text(FAKE_CTR.format(python=sys.executable, state=str(state)))
    path.chmod(0o755)

    def calls():
        p = Path(str(state) + ".calls")
        return [json.loads(l) for l in p.read_text().splitlines()] if p.exists() else []

    return str(path), state, calls


def make_bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    moi.build_image(bin_dir / "a.tar", ["registry.k8s.io/a:1"], files=[moi.FileEntry("/a", content=b"a")])
    moi.build_image(
        bin_dir / "b.tar", ["docker.io/x/b:1", "docker.io/y/b:2"], files=[moi.FileEntry("/b", content=b"b")]
    )
    (bin_dir / "images.json").write_text(
        json.dumps({"registry.k8s.io/a:1": "a.tar", "docker.io/x/b:1": "b.tar", "docker.io/y/b:2": "b.tar"})
    )
    return bin_dir


def test_image_tarballs_from_listing_and_from_tar_files(tmp_path):
    bin_dir = make_bin_dir(tmp_path)
    listed = image_tarballs(bin_dir)
    assert listed == {
        "docker.io/x/b:1": bin_dir / "b.tar",
        "docker.io/y/b:2": bin_dir / "b.tar",
        "registry.k8s.io/a:1": bin_dir / "a.tar",
    }
    (bin_dir / "images.json").unlink()
    assert image_tarballs(bin_dir) == listed
    (bin_dir / "images.json").write_text(json.dumps({"registry.k8s.io/gone:1": "gone.tar"}))
    with pytest.raises(ImageImportError, match="gone.tar, which is missing"):
        image_tarballs(bin_dir)


def test_import_images_imports_once_and_skips_same_digest(tmp_path, fake_ctr):
    ctr, state, calls = fake_ctr
    bin_dir = make_bin_dir(tmp_path)
    names = import_images(bin_dir, ctr=ctr, address="/run/x.sock")
    assert sorted(names) == ["docker.io/x/b:1", "docker.io/y/b:2", "registry.k8s.io/a:1"]
    imports = [c for c in calls() if c[4:6] == ["images", "import"]]
    assert len(imports) == 2  # one per tarball
    assert all(
        c[:4] == ["--address", "/run/x.sock", "--namespace", "k8s.io"]
        and c[6:10] == ["--platform", "linux/amd64", "--snapshotter", "overlayfs"]
        for c in imports
    )
    assert list_images(ctr=ctr, address="/run/x.sock") == json.loads(state.read_text())

    # again: everything present with the same digest → no import
    n = len(calls())
    assert sorted(import_images(bin_dir, ctr=ctr, address="/run/x.sock")) == sorted(names)
    assert [c for c in calls()[n:] if c[4:6] == ["images", "import"]] == []

    # a rebuilt tarball (new digest) is imported again
    moi.build_image(bin_dir / "a.tar", ["registry.k8s.io/a:1"], files=[moi.FileEntry("/a", content=b"new")])
    n = len(calls())
    import_images(bin_dir, ctr=ctr, address="/run/x.sock")
    assert [c[-1] for c in calls()[n:] if c[4:6] == ["images", "import"]] == [str(bin_dir / "a.tar")]


def test_import_images_errors_are_one_line(tmp_path):
    bin_dir = make_bin_dir(tmp_path)
    with pytest.raises(ImageImportError, match="not found"):
        import_images(bin_dir, ctr=str(tmp_path / "no-ctr"), address="/x")
    failing = tmp_path / "failing-ctr"
    failing.write_text("#!/bin/sh\necho 'ctr: connection refused' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(ImageImportError, match=r"failed \(exit 1\): ctr: connection refused") as e:
        import_images(bin_dir, ctr=str(failing), address="/x")
    assert "\n" not in str(e.value)


# ---- real: a throw-away containerd ---------------------------------------------------------------

HELLO_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("kready-hello uid=%d", (int)getuid());
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    return 0;
}
"""


def _need(tool: str) -> str:
    """The runtime's programs as the local provider runs them (the bundled containerd 2 when the binaries directory
    holds it, else the host's); other tools from PATH."""
    rt = runtime.find(bins.bin_dir())
    if tool in runtime.RUNTIME_BINARIES and rt.bundled:
        path = rt.program(tool) if Path(rt.program(tool)).is_file() else None
    else:
        path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is missing: run tools/build-local-binaries.sh (containerd, runc) or apt-get install gcc",
                    pytrace=False)
    return path


class Containerd:
    """A containerd of its own (root, state, socket under ``base``), stopped and removed by ``stop``."""

    def __init__(self, base: Path):
        self.base = base
        self.address = str(base / "containerd.sock")
        self.config = base / "config.toml"
        self.log = base / "containerd.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        b = self.base
        self.config.write_text(
            f"""version = 2
root = "{b / 'root'}"
state = "{b / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.address}"
[ttrpc]
  address = "{self.address}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{b / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  # root here lacks CAP_SYS_RESOURCE: never lower a container's oom_score_adj below containerd's
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{b / 'cni'}"
"""
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [_need("containerd"), "--config", str(self.config)],
                env={**os.environ, "PATH": runtime.find(bins.bin_dir()).env_path()},  # its shim, and runc
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            r = subprocess.run(self.ctr("version"), capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"containerd not serving after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def ctr(self, *args: str, namespace: str = "k8s.io") -> list[str]:
        return [_need("ctr"), "--address", self.address, "--namespace", namespace, *args]

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(self.ctr(*args), capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        # containers first (ctr run --rm removes its own; this is for a failed test), then containerd
        if self.proc is not None and self.proc.poll() is None:
            try:
                for line in self.run("tasks", "ls", "-q", timeout=15).stdout.split():
                    self.run("tasks", "kill", "-s", "SIGKILL", line, timeout=15)
                    self.run("tasks", "delete", "-f", line, timeout=15)
                for line in self.run("containers", "ls", "-q", timeout=15).stdout.split():
                    self.run("containers", "delete", line, timeout=15)
            except (subprocess.TimeoutExpired, OSError):
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # shims this containerd started (their command line names our socket)
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and self.address.encode() in argv:
                try:
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # mounts left under base (snapshots of containers that still ran), deepest first
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == str(self.base) or point.startswith(str(self.base) + "/"):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def containerd():
    if os.geteuid() != 0:
        pytest.fail("needs root to run containerd", pytrace=False)
    for tool in ("containerd", "ctr", "runc"):
        _need(tool)
    # short path: unix socket paths are limited to 108 bytes
    base = Path(tempfile.mkdtemp(prefix="kready-ctd-", dir="/tmp"))
    ctd = Containerd(base)
    try:
        ctd.start()
        yield ctd
    finally:
        ctd.stop()
    assert not base.exists()


def static_hello(tmp_path: Path) -> Path:
    src = tmp_path / "hello.c"
    src.write_text(HELLO_C)
    out = tmp_path / "hello"
    subprocess.run([_need("gcc"), "-static", "-Os", "-o", str(out), str(src)], check=True, timeout=120)
    return out


def test_real_containerd_import_and_run(tmp_path, containerd):
    hello = static_hello(tmp_path)
    bin_dir = tmp_path / "bin"
    name = "registry.k8s.io/e2e-test-images/kready-hello:0.1"
    res = moi.build_image(
        bin_dir / "hello.tar",
        [name],
        files=[moi.FileEntry("/hello", source=hello, mode=0o755)],
        dirs=[moi.Directory("/tmp", 0o1777)],
        config=moi.ImageConfig(entrypoint=["/hello"], cmd=["from-cmd"], user="65532:65532"),
    )
    (bin_dir / "images.json").write_text(json.dumps({name: "hello.tar"}))

    # a ctr that logs its calls, to see the second import skipped
    calls = tmp_path / "ctr-calls"
    wrapper = tmp_path / "ctr"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {_need("ctr")} "$@"\n')
    wrapper.chmod(0o755)

    assert import_images(bin_dir, ctr=str(wrapper), address=containerd.address) == [name]
    assert sum(" images import " in l for l in calls.read_text().splitlines()) == 1

    ls = containerd.run("images", "ls")
    assert ls.returncode == 0, ls.stderr
    rows = {l.split()[0]: l.split() for l in ls.stdout.splitlines()[1:]}
    assert rows[name][2] == res.manifest_digest, ls.stdout
    # the CRI plugin saw it: it adds the image id (config digest) as a reference
    manifest = json.loads(blob(read_layout(bin_dir / "hello.tar"), res.manifest_digest))
    assert manifest["config"]["digest"] in list_images(ctr=_need("ctr"), address=containerd.address), ls.stdout
    # unpacked for overlayfs: a single layer's snapshot is keyed by its diff id (the chain id)
    snaps = containerd.run("snapshots", "--snapshotter", "overlayfs", "ls")
    assert res.diff_id in snaps.stdout, snaps.stdout

    # again: present with the same digest, not imported
    assert import_images(bin_dir, ctr=str(wrapper), address=containerd.address) == [name]
    assert sum(" images import " in l for l in calls.read_text().splitlines()) == 1

    run = containerd.run("run", "--rm", name, "kready-hello-1", timeout=120)
    assert run.returncode == 0, run.stderr + containerd.log.read_text()[-2000:]
    assert run.stdout.strip() == "kready-hello uid=65532 from-cmd"
    run = containerd.run("run", "--rm", name, "kready-hello-2", "/hello", "a", "b", timeout=120)
    assert run.stdout.strip() == "kready-hello uid=65532 a b", run.stderr

    # a rebuilt image (new digest) replaces the old one under the same name
    res2 = moi.build_image(
        bin_dir / "hello.tar",
        [name],
        files=[moi.FileEntry("/hello", source=hello, mode=0o755)],
        config=moi.ImageConfig(entrypoint=["/hello"], cmd=["rebuilt"]),
    )
    assert res2.manifest_digest != res.manifest_digest
    assert import_images(bin_dir, ctr=str(wrapper), address=containerd.address) == [name]
    assert list_images(ctr=_need("ctr"), address=containerd.address)[name] == res2.manifest_digest
    run = containerd.run("run", "--rm", name, "kready-hello-3", timeout=120)
    assert run.stdout.strip() == "kready-hello uid=0 rebuilt", run.stderr


def test_real_containerd_busybox_image(tmp_path, containerd):
    """The shell tools the agnhost and helper images take from Debian's busybox-static work in a container."""
    busybox = Path("/bin/busybox")
    r = subprocess.run(["readelf", "-l", str(busybox)], capture_output=True, text=True, timeout=30) if busybox.exists() else None
    if r is None or "INTERP" in r.stdout:
        pytest.fail("Debian's busybox-static is needed: apt-get install busybox-static", pytrace=False)
    name = "registry.k8s.io/e2e-test-images/kready-busybox:0.1"
    applets = ["sh", "echo", "id", "ls", "mkdir", "rm", "cat", "touch", "wc"]
    moi.build_image(
        tmp_path / "bin" / "bb.tar",
        [name],
        files=[
            moi.FileEntry("/bin/busybox", source=busybox, mode=0o755),
            moi.FileEntry("/etc/passwd", content=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"),
            moi.FileEntry("/etc/group", content=b"root:x:0:\nnobody:x:65534:\n"),
        ],
        symlinks=[moi.Symlink(f"/bin/{a}", "busybox") for a in applets],
        dirs=[moi.Directory("/tmp", 0o1777)],
        config=moi.ImageConfig(entrypoint=["/bin/sh", "-c"], cmd=["echo default"]),
    )
    assert import_images(tmp_path / "bin", ctr=_need("ctr"), address=containerd.address) == [name]
    run = containerd.run(
        "run", "--rm", name, "kready-bb", "/bin/sh", "-c",
        "echo hello; id -u; mkdir /tmp/d && touch /tmp/d/f && ls /tmp/d; rm -r /tmp/d; stat -c %a /tmp 2>/dev/null || ls -ld /tmp",
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.split()
    assert lines[:3] == ["hello", "0", "f"], run.stdout
    assert "drwxrwxrwt" in run.stdout or "1777" in run.stdout, run.stdout


# ---- the images tools/build-local-binaries.sh built ----------------------------------------------


def built_bin_dir() -> Path:
    cache = Path(os.environ.get("KREADY_CACHE", Path.home() / ".cache" / "pytest-kready"))
    return cache / "local" / f"k8s-{os.environ.get('K8S_VERSION', 'v1.36.2')}" / "bin"


@pytest.mark.integration
def test_built_images_import_and_run(containerd):
    bin_dir = built_bin_dir()
    if not (bin_dir / images_mod.IMAGES_JSON).is_file():
        pytest.fail(f"no {bin_dir}/images.json: run tools/build-local-binaries.sh", pytrace=False)
    expected = json.loads((bin_dir / "images.json").read_text())
    names = import_images(bin_dir, ctr=_need("ctr"), address=containerd.address, timeout=600)
    assert sorted(set(names)) == sorted(expected)
    present = list_images(ctr=_need("ctr"), address=containerd.address)
    assert all(n in present for n in expected)

    def image(prefix: str) -> str:
        [n] = [n for n in expected if n.startswith(prefix)]
        return n

    checks = [
        (image("registry.k8s.io/e2e-test-images/agnhost:"), ["/bin/sh", "-c", "echo ok; id -u; test -d /uploads && test -x /agnhost-2 && /agnhost --help >/dev/null && echo tools"], "ok\n0\ntools"),
        # bash, as upstream's image has: the reachability engine's TCP probes use its /dev/tcp (no program per probe)
        (image("registry.k8s.io/e2e-test-images/agnhost:"), ["bash", "-c", "echo ${BASH_VERSINFO[0]}; { exec 3<>/dev/tcp/127.0.0.1/1; } 2>&1; true"], "connect: "),
        (image("registry.k8s.io/coredns/coredns:"), ["/coredns", "-version"], "CoreDNS-"),
        (image("docker.io/kindest/local-path-provisioner:"), ["local-path-provisioner", "--version"], "local-path-provisioner version"),
        (image("docker.io/kindest/local-path-helper:"), ["/bin/sh", "-c", "mkdir -m 0777 -p /tmp/v && rm -rf /tmp/v && echo helper"], "helper"),
    ]  # fmt: skip
    for i, (name, argv, want) in enumerate(checks):
        r = containerd.run("run", "--rm", name, f"kready-built-{i}", *argv, timeout=120)
        assert r.returncode == 0 and want in r.stdout, f"{name}: {r.stdout} {r.stderr}"
    # pause runs as 65535 and waits for a signal
    pause = image("registry.k8s.io/pause:")
    r = containerd.run("run", "-d", pause, "kready-pause", timeout=60)
    assert r.returncode == 0, r.stderr
    time.sleep(0.5)
    tasks = containerd.run("tasks", "ls").stdout
    assert "kready-pause" in tasks and "RUNNING" in tasks, tasks
    containerd.run("tasks", "kill", "-s", "SIGTERM", "kready-pause")
    deadline = time.monotonic() + 20
    while "RUNNING" in containerd.run("tasks", "ls").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    containerd.run("tasks", "delete", "kready-pause")
    containerd.run("containers", "delete", "kready-pause")
