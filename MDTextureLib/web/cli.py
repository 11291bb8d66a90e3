"""``mdtexture serve``: its arguments (the app itself is imported only when the command runs, so the command line
works without the web extra installed)."""

from __future__ import annotations

import argparse

from ..constants import CLASSES
from ..precision import PRECISION_HELP, PRECISIONS
from .files import DEFAULT_UPLOAD_LIMIT_MB

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="the whole workflow in a web browser (trame-slicer): open, classify, draw muscles, score",
        description="Start the MDTexture web app and print its address. It listens on this computer only unless "
                    "--host says otherwise. Files are read from and results written to --data-root only; uploads "
                    "are kept in a private temporary folder and removed when the server stops. Needs the 'web' "
                    "extra (pip install 'mdtexture[web]').")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; anything else is reachable "
                        "from the network, with no login)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--data-root", metavar="DIR",
                   help="the only folder the page may browse, read and export into (default: none; uploads only)")
    p.add_argument("--upload-limit-mb", type=float, default=DEFAULT_UPLOAD_LIMIT_MB, metavar="MB",
                   help=f"largest file a page may upload (default {DEFAULT_UPLOAD_LIMIT_MB})")
    p.add_argument("--ff", metavar="FF", help="open this fat-fraction image at start")
    p.add_argument("--water", metavar="W", help="open this water image at start")
    p.add_argument("--fat", metavar="F", help="open this fat image at start")
    p.add_argument("--segmentation", metavar="SEG", help="open this muscle labelmap or .seg.nrrd at start")
    p.add_argument("--study", metavar="DIR", help="open this DICOM study folder at start")
    p.add_argument("--demo", action="store_true", help="open a generated phantom (synthetic) at start")
    p.add_argument("--demo-class", choices=CLASSES, default="DMD", help="the demo phantom's class (default DMD)")
    p.add_argument("--demo-seed", type=int, default=7, help="the demo phantom's seed (default 7)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(args)
