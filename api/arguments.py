"""The command line's argument machinery: parsers whose arguments are defined when
their command is used, help that shows every default, and the argparse types that
refuse values no run could use (exit 2, before any work).

Imports nothing of irtcat's engine at import time: `irtcat --help` stays light.
"""

from __future__ import annotations

import argparse
import math


class UsageError(Exception):
    """Bad command-line usage or input: exit status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Help that ends each option's text with its default, unless the text states it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.default in (None, False, argparse.SUPPRESS)
                or "default" in text):
            return text
        return f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """A parser that raises `UsageError`, and adds its arguments (``define(parser)``)
    only when it parses or shows its help: a command's choices and handler, and the
    libraries they come from, load only when that command is used."""

    def __init__(self, *args, define=None, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._define = define

    def _defined(self):
        if self._define is not None:
            define, self._define = self._define, None
            define(self)

    def parse_known_args(self, args=None, namespace=None):
        self._defined()
        return super().parse_known_args(args, namespace)

    def format_help(self):
        self._defined()
        return super().format_help()

    def error(self, message):
        raise UsageError(message)


def model_name(text):
    """argparse type of a model option: irtcat's name, from any case or mirt's spelling
    (an unknown name passes through, for argparse to list the choices)."""
    from irtcat.engine.names import canonical_model

    return canonical_model(text, strict=False)


def method_name(text):
    """argparse type of a scoring method option, as `model_name`."""
    from irtcat.engine.names import canonical_method

    return canonical_method(text, strict=False)


def whole_number(low, high=None):
    """argparse type: a whole number in [low, high] (no upper limit when high is None)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {text}")
        return value
    return parse


def number_in(low, high):
    """argparse type: a number in [low, high]."""
    def parse(text):
        value = _float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, "
                                             f"got {text}")
        return value
    return parse


def positive_number(high):
    """argparse type: a number in (0, high]."""
    def parse(text):
        value = _float(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if not value <= high:
            raise argparse.ArgumentTypeError(f"must be <= {high:g}, got {text}")
        return value
    return parse


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def pair(text):
    """argparse type: X,Y, two finite numbers, Y positive."""
    try:
        first, second = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers X,Y, got {text!r}") from None
    if not (math.isfinite(first) and math.isfinite(second)) or second <= 0:
        raise argparse.ArgumentTypeError(f"expected finite X and a positive Y, got {text!r}")
    return first, second


def shape_pair(text):
    """ALPHA,BETA of a beta prior: both positive."""
    first, second = pair(text)
    if first <= 0:
        raise argparse.ArgumentTypeError(f"alpha and beta must be positive, got {text!r}")
    return first, second
