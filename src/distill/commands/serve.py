"""`distill serve`: serve a model over an OpenAI-compatible HTTP API (chat, completions, logprobs, streaming)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket

from distill.errors import DistillError

NAME = "serve"
HELP = "serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models)"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="default",
                   help="model to serve: 'default' (SmolLM2-135M-Instruct), a model directory, a .gguf file or a hub id")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key-file", default=None,
                   help="file with one API key per line (optionally name:key); without it no key is required")
    p.add_argument("--served-name", default=None,
                   help="model id clients send and /v1/models lists (default: the MODEL argument)")
    p.add_argument("--max-tokens", type=int, default=1024, help="largest max_tokens a request may ask for")
    p.add_argument("--max-n", type=int, default=8, help="largest n (choices per prompt) a request may ask for")
    p.add_argument("--max-logprobs", type=int, default=20,
                   help="largest prompt_logprobs (per-position top-k for scoring, as vLLM's --max-logprobs)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body; larger gets 413")
    p.add_argument("--max-batch", type=int, default=8, help="most sequences decoded together in one batch")
    p.add_argument("--watermark-key", default=None,
                   help="watermark every answer with this key (from `distill watermark keygen`); each API "
                        "account gets its own sub-key, so a detection names the account")
    p.add_argument("--watermark-top-k", type=int, default=None,
                   help="bias only the K most likely candidates per step (default 64: same detection, far lower "
                        "perplexity cost than biasing all of them; 0 = the whole vocabulary)")
    p.add_argument("--guard-config", default=None,
                   help="YAML config of the distillation-traffic guard (features, thresholds, actions; see "
                        "docs/protect.md)")
    p.add_argument("--antidistill", metavar="PROXY", default=None,
                   help="antidistillation sampling (Savani et al. 2025): perturb every answer's sampling along the "
                        "direction that most raises this proxy student's loss (a small model on the served model's "
                        "tokenizer); see docs/protect.md")
    p.add_argument("--antidistill-lambda", type=float, default=1.0,
                   help="strength of the antidistillation bias (0 = plain sampling; default 1)")
    p.add_argument("--antidistill-eps", type=float, default=1e-3,
                   help="finite-difference step in parameter space (default 1e-3)")
    p.add_argument("--log-level", default="info", help="uvicorn log level (debug, info, warning, error)")


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from distill.keys.api import load_api_keys
    from distill.models.loading import load_model
    from distill.serve.app import Limits, create_app
    from distill.serve.engine import Engine
    from distill.serve.httpserver import JsonErrorH11Protocol
    from distill.tokens.toolparse import TOOL_SUPPORT, tool_support

    for opt in ("max_tokens", "max_n", "max_body_bytes", "max_batch"):
        if getattr(args, opt) < 1:
            raise DistillError(f"--{opt.replace('_', '-')} must be at least 1", where="distill serve",
                               fix="pass a positive number")
    if not 0 <= args.port <= 65535:
        raise DistillError(f"--port {args.port} is not a TCP port", where="distill serve", fix="use 0-65535")
    if args.watermark_top_k is not None and args.watermark_top_k < 0:
        raise DistillError(f"--watermark-top-k must be 0 (whole vocabulary) or a positive count, not "
                           f"{args.watermark_top_k}", where="distill serve", fix="e.g. --watermark-top-k 64")
    if args.antidistill and (args.antidistill_lambda < 0 or args.antidistill_eps <= 0):
        raise DistillError("--antidistill-lambda must be at least 0 and --antidistill-eps positive",
                           where="distill serve", fix="e.g. --antidistill-lambda 1 --antidistill-eps 1e-3")
    keys = load_api_keys(args.api_key_file) if args.api_key_file else None
    if args.guard_config:  # refuse a bad guard config before the (slow) model load, not after
        from distill.protection.guard import load_config as load_guard_config

        load_guard_config(args.guard_config)
    loaded = load_model(args.model)
    engine = Engine(loaded.model, loaded.tokenizer, max_batch=args.max_batch)
    name = args.served_name or args.model
    aliases = tuple({loaded.info.spec, loaded.info.name} - {name, ""})
    limits = Limits(max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens, max_n=args.max_n,
                    max_logprobs=args.max_logprobs, default_max_tokens=min(256, args.max_tokens))
    from distill.protection.watermark.processor import SERVE_TOP_K
    from distill.serve.protection import load_protection

    top_k = SERVE_TOP_K if args.watermark_top_k is None else args.watermark_top_k or None  # 0: whole vocabulary
    protection = load_protection(args.watermark_key, args.guard_config, loaded.tokenizer, top_k)
    if args.antidistill:
        from distill.protection.antidistill import load_antidistill

        protection.antidistill = load_antidistill(args.antidistill, loaded.tokenizer, args.antidistill_lambda,
                                                  args.antidistill_eps)
    app = create_app(engine, name, aliases=aliases, api_keys=keys, limits=limits, **protection.hooks())
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into a normal exit so that the engine
    # stops and the guard's state is saved (the `finally` below).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))  # bound here, so --port 0 reports the port it got before serving
        port = sock.getsockname()[1]
        log.info("serving %s as '%s' on http://%s:%d (%s)", loaded.info.path, name, args.host, port,
                 f"{len(keys)} API key(s)" if keys else "no API key required")
        log.info("tool calls: %s", TOOL_SUPPORT[tool_support(loaded.tokenizer)])
        print(f"distill serve: listening on http://{args.host}:{port}", flush=True)
        config = uvicorn.Config(app, log_level=args.log_level, http=JsonErrorH11Protocol)
        uvicorn.Server(config).run(sockets=[sock])
    except OSError as e:
        raise DistillError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}", where="distill serve",
                           fix="pick another --port (0 picks a free one) or stop the process using it") from None
    finally:
        engine.close()
        protection.close()
    return 0
