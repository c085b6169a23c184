"""``python -m lvae.data``: download the real datasets, or export the 3D Shapes twin.

    python -m lvae.data download shapes3d --to data/shapes3d
    python -m lvae.data download smallnorb --to data/smallnorb --url-base https://mirror/
    python -m lvae.data download shapes3d --to data/shapes3d --verify
    python -m lvae.data export-shapes3d --to twin/3dshapes.h5 [--num-images 4800]
"""

from __future__ import annotations

import argparse
import sys

from lvae.data.download import SOURCES, URL_BASE_ENV, DownloadError, download, verify


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lvae.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fetch a real dataset (resumable, verified)")
    d.add_argument("name", choices=sorted(SOURCES))
    d.add_argument("--to", required=True, help="folder to write into")
    d.add_argument("--url-base", default=None,
                   help=f"mirror URL or local folder with the same file names "
                        f"(default: ${URL_BASE_ENV} or the official sources)")
    d.add_argument("--retries", type=int, default=3, help="tries per file (default: 3)")
    d.add_argument("--verify", action="store_true",
                   help="download nothing: check the files already in --to against their "
                        "published sizes and checksums (rc 1 if any is missing or damaged)")
    e = sub.add_parser("export-shapes3d", help="write the twin as a real-layout 3dshapes.h5")
    e.add_argument("--to", required=True, help="output .h5 path")
    e.add_argument("--num-images", type=int, default=480_000,
                   help="write only the first N images of the grid (default: all)")
    args = parser.parse_args(argv)
    if args.command == "download" and args.retries < 1:
        parser.error(f"--retries must be at least 1, got {args.retries}")

    if args.command == "download" and args.verify:
        problems = verify(args.name, args.to)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if args.command == "download":
        try:
            download(args.name, args.to, url_base=args.url_base, retries=args.retries)
        except DownloadError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    from lvae.data.shapes3d import Shapes3DTwin

    Shapes3DTwin(64).export_h5(args.to, num_images=args.num_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
