"""Start the web app: a trame server, the trame-slicer views, the session, the page; open a first case if asked.

A running classification is polled by a small asynchronous loop (the child process does the work, so the server
keeps answering while it runs). The server prints ``MDTexture is ready at http://HOST:PORT/`` once it listens.
"""

from __future__ import annotations

import asyncio
import sys
import time

from ..errors import InputError
from .cli import LOCAL_HOSTS
from .files import DataRoot, Uploads

POLL_INTERVAL_S = 0.25
READY_LINE = "MDTexture is ready at"


def build_app(server, data_root=None, upload_limit_mb: float = 512.0, precision: str = "auto"):
    """The views, session and page on ``server`` (a trame server, started or not): returns the session.
    ``precision`` (auto, fp32, bf16) is what every Classify of the page runs the network in."""
    from .layout import build_page
    from .session import WebSession
    from .viewer import SlicerViews

    views = SlicerViews(server)
    session = WebSession(server.state, views, DataRoot(data_root), Uploads(upload_limit_mb))
    session.precision = precision

    def act(method, *args):
        result = session.guarded(method, *args)
        if session.job is not None and not getattr(session, "_polling", False):
            _start_polling(session)
        return result

    build_page(server, session, act)
    if session.data_root.root is not None:
        session.guarded(session.browse, "")
    return session


def _start_polling(session) -> None:
    session._polling = True

    async def loop():
        try:
            while True:
                with session.state:
                    running = session.poll_classify()
                if not running:
                    break
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            session._polling = False

    asyncio.get_event_loop().create_task(loop())


def open_first_case(session, args) -> None:
    """The case named on the command line (files, a study or --demo); an error is shown in the page."""
    if args.demo:
        session.guarded(session.open_demo, args.demo_class, args.demo_seed)
    elif args.study:
        session.guarded(session.open_study, args.study)
    elif args.ff or args.water or args.fat:
        session.guarded(session.open_files, ff=args.ff, water=args.water, fat=args.fat,
                        segmentation=args.segmentation)
    elif args.segmentation:
        raise InputError("--segmentation needs --ff (or --water and --fat)")
    if session.state.error:
        print(f"mdtexture: error: {session.state.error}", file=sys.stderr)


def serve(args) -> int:
    t0 = time.perf_counter()
    if args.host not in LOCAL_HOSTS:
        print(f"mdtexture: warning: listening on {args.host}: anyone who can reach this address can use the app "
              "and its data folder; there is no login", file=sys.stderr)
    try:
        from trame.app import get_server
    except ImportError:
        raise InputError("the web app needs the 'web' extra: pip install 'mdtexture[web]'") from None
    data_root = DataRoot(args.data_root)  # refuse a missing folder before anything starts
    server = get_server("mdtexture", client_type="vue3")
    session = build_app(server, data_root.root, args.upload_limit_mb, args.precision)
    open_first_case(session, args)

    @server.controller.add("on_server_ready")
    def ready(**_):
        host = args.host if ":" not in args.host else f"[{args.host}]"
        print(f"{READY_LINE} http://{host}:{server.port}/  (started in {time.perf_counter() - t0:.1f} s; "
              "Ctrl-C stops it)", flush=True)

    try:
        server.start(host=args.host, port=args.port, open_browser=False, show_connection_info=False,
                     disable_logging=True)
    finally:
        if session.job is not None:
            session.job.cancel()
        session.uploads.close()
    return 0


if __name__ == "__main__":  # python -m MDTextureLib.web.serve ... (same as mdtexture serve ...)
    from ..cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
