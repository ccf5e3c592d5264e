# Images from the user's program to the learner's page: `import codex_display`.
#
#   codex_display.show(obj)   obj: PNG, JPEG or SVG bytes, SVG text, a path to such
#                             a file, a PIL image or a matplotlib figure
#   codex_display.show()      every open matplotlib figure (what plt.show() does)
#
# Shipped as source text with the child (never a file in the image) and put in
# sys.modules before the program runs. The matplotlib backend it provides is the
# module codex_display_backend, which matplotlib is told to use as it is imported
# (as MPLBACKEND=module://codex_display_backend would); PIL's Image.show() comes
# here too.
# Each image goes to the supervisor over a private pipe; the supervisor frames it
# with its nonce into the terminal at this exact place among the program's text,
# then acknowledges, so what was printed before it is shown before it. Text written
# to sys.stderr is marked in the same write with the stream token (a mark the program
# could forge only marks its own text), so stderr costs no round trip.
# The builtin modules, not `signal` and `threading` (enum, weakref sets: ~15 ms that
# every cold start would wait for before the program runs).
import _signal
import _thread
import importlib.machinery  # here: imported inside the finder, it would find itself
import io
import json
import os
import sys

BACKEND = "codex_display_backend"
_lock = _thread.RLock()  # a message sent while flushing stdout nests, whole
_chan = None  # (write fd, ack fd), set by the child runner
_owed = 0  # messages sent whose acknowledgement has not been read yet
_switches = (b"", b"")  # the stream switches to stderr and back (see _mark_stderr)


def _connect(write_fd, ack_fd):
    global _chan
    _chan = (write_fd, ack_fd)


def _send(kind, payload=b""):
    """One message to the supervisor; returns once its record is in the terminal."""
    global _owed
    if _chan is None:
        return
    with _lock:
        try:
            sys.stdout.flush()  # what was printed before comes first
        except Exception:
            pass
        data = b"%s %d\n" % (kind, len(payload)) + payload
        # A message cut short by Ctrl-C would leave the supervisor reading the next
        # one as the rest of it, so signals wait until it is whole (the supervisor
        # reads as it comes: this takes no longer than the copy).
        held = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(_chan[0], view) :]
            _owed += 1
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, held)
        # The wait for the acknowledgement may be interrupted; the next message then
        # first takes the acknowledgements still owed, so each waits for its own.
        while _owed:
            if os.read(_chan[1], 1) == b"":
                raise OSError("the display channel is closed")
            _owed -= 1


def _mime(data):
    # What the server will check the bytes for (it believes only the bytes).
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "image/svg+xml" if b"<svg" in data[:8192] else "application/octet-stream"


def _emit(image, mime, text):
    header = json.dumps({"mime": mime, "text": text[:200]}).encode()
    _send(b"d", header + b"\n" + image)


def _figure_png(fig):
    buf = io.BytesIO()
    fig.canvas.print_figure(buf, format="png")
    return buf.getvalue()


def _show_figure(fig):
    _emit(_figure_png(fig), "image/png", repr(fig))


def _show_open_figures(close=True):
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    from matplotlib._pylab_helpers import Gcf

    for manager in Gcf.get_all_fig_managers():
        _show_figure(manager.canvas.figure)
    if close:
        pyplot.close("all")


def _show_pil(image):
    buf = io.BytesIO()
    fmt, mime = ("JPEG", "image/jpeg") if image.format == "JPEG" else ("PNG", "image/png")
    if fmt == "PNG" and image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA")
    image.save(buf, format=fmt)
    _emit(buf.getvalue(), mime, "<PIL.Image %s %dx%d>" % (image.mode, *image.size))


def show(obj=None, **kwargs):
    """Display obj (PNG/JPEG/SVG bytes, SVG text, a file path, a PIL image, a figure),
    or with no argument every open matplotlib figure, which are then closed (pyplot's
    show lands here)."""
    if obj is None or isinstance(obj, bool):
        _show_open_figures()
        return
    if isinstance(obj, str) and obj.lstrip().startswith("<"):
        show(obj.encode("utf-8"))  # SVG text
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        _emit(data, _mime(data), "<image %d bytes>" % len(data))
    elif isinstance(obj, (str, os.PathLike)):
        with open(obj, "rb") as f:
            show(f.read())
    elif hasattr(obj, "canvas") and hasattr(obj, "savefig"):
        _show_figure(obj)
    elif hasattr(obj, "save") and hasattr(obj, "mode"):
        _show_pil(obj)
    else:
        raise TypeError(
            "codex_display.show() takes image bytes, SVG text, a path, a PIL image or a figure"
        )


def _at_exit():
    """Figures still open when the program ends are shown, as in a notebook."""
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None and "matplotlib.pyplot" in sys.modules:
        if matplotlib.get_backend() == "module://" + BACKEND:
            _show_open_figures()


class _StderrMarked(io.TextIOWrapper):
    """sys.stderr, still a TTY, whose text is marked as stderr: the switches and the
    text go to the terminal in one write, so no other write can come between them."""

    def write(self, text):
        if not text:
            return 0
        try:
            sys.stdout.flush()  # what was printed before comes first
        except Exception:
            pass
        super().flush()
        data = text.encode(self.encoding, self.errors)
        self.buffer.write(_switches[0] + data + _switches[1])
        self.buffer.flush()
        return len(text)


def _mark_stderr(token):
    global _switches
    mark = b"\x1b]6973;" + token.encode("ascii") + b";"
    _switches = (mark + b"stderr:on\x07", mark + b"stderr:off\x07")
    real = sys.stderr
    marked = _StderrMarked(
        real.buffer, encoding=real.encoding, errors="backslashreplace", line_buffering=True
    )
    marked._codex_real = real  # kept alive: its finalizer would close fd 2's buffer
    sys.stderr = marked


class _Viewer:
    """PIL's Image.show() viewer (ImageShow.register): the image is displayed."""

    format = None
    options = {}

    def show(self, image, **options):
        _show_pil(image)
        return 1


class _Backend:
    """The loader of the matplotlib backend: Agg's canvas, and plt.show() is show()."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        from matplotlib.backend_bases import FigureManagerBase
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        module.FigureCanvas = FigureCanvasAgg
        module.FigureManager = FigureManagerBase
        module.show = show


def _choose_backend(matplotlib):
    # Our backend unless the program chose another in the environment before the
    # import. Set here, not in the environment: a subprocess of the program inherits
    # the image's MPLBACKEND=Agg, and this module is not there to be its backend.
    if os.environ.get("MPLBACKEND", "Agg") in ("Agg", "agg"):
        matplotlib.rcParams["backend"] = "module://" + BACKEND
    _seed_font_cache()  # before pyplot loads the font list: only programs that plot pay


def _register_viewer(image_show):
    image_show.register(_Viewer(), -1)


class _Finder:
    """Our backend's module; matplotlib told to use it; PIL.ImageShow with our viewer
    registered: each when the program first imports it (one that never plots pays
    nothing)."""

    after = {"matplotlib": _choose_backend, "PIL.ImageShow": _register_viewer}

    def find_spec(self, name, path, target=None):
        if name == BACKEND:
            return importlib.machinery.ModuleSpec(name, _Backend())
        then = self.after.get(name)
        if then is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            then(module)

        spec.loader.exec_module = exec_module
        return spec


FONT_CACHE = "/usr/share/codex/matplotlib"  # built with the image (sandbox-image/Dockerfile)


def _seed_font_cache():
    """Matplotlib's font list, copied from the image into this sandbox's own config dir:
    built there, it costs the first plot of every sandbox a second or more. Never
    over a file already there (the program's own, or one matplotlib made)."""
    target = os.environ.get("MPLCONFIGDIR")
    if not target or not os.path.isdir(FONT_CACHE):
        return
    try:
        os.makedirs(target, 0o700, exist_ok=True)
        for name in os.listdir(FONT_CACHE):
            if os.path.exists(os.path.join(target, name)):
                continue
            with open(os.path.join(FONT_CACHE, name), "rb") as src:
                data = src.read()
            with open(os.path.join(target, name), "wb") as dst:
                dst.write(data)
    except OSError:
        pass  # matplotlib builds its own, as it would without the image's


def _install(write_fd, ack_fd, token):
    _connect(write_fd, ack_fd)
    sys.meta_path.insert(0, _Finder())
    _mark_stderr(token)
