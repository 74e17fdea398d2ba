"""Parameter types for what a person names on the command line: files to read, files or folders to import,
files to write. Each becomes a `userfiles` object that reads or writes with the person's own permissions,
in-process or through the control socket alike."""

from __future__ import annotations

import click

from appliance.userfiles import InputFile, InputTree, OutputFile


def _files(ctx: click.Context | None):
    from appliance.cli.app import App
    from appliance.cli.caller import LocalFiles

    app = ctx.find_object(App) if ctx is not None else None
    return app.caller.files if app is not None and app.caller is not None else LocalFiles()


class InFile(click.ParamType):
    """A regular file to read."""

    name = "file"

    def convert(self, value, param, ctx):
        if isinstance(value, InputFile):
            return value
        if not str(value):
            self.fail("empty file name", param, ctx)
        return _files(ctx).input_file(str(value))


class InTree(click.ParamType):
    """A file or a folder to read whole (a model to import, an artifact copy to verify)."""

    name = "path"

    def convert(self, value, param, ctx):
        if isinstance(value, InputTree):
            return value
        if not str(value):
            self.fail("empty path", param, ctx)
        return _files(ctx).input_tree(str(value))


class OutFile(click.ParamType):
    """A file to write: it appears only when the command succeeds."""

    name = "file"

    def __init__(self, *, exclusive: bool = False, mode: int = 0o600):
        self.exclusive = exclusive
        self.mode = mode

    def convert(self, value, param, ctx):
        if isinstance(value, OutputFile):
            return value
        if not str(value):
            self.fail("empty file name", param, ctx)
        return _files(ctx).output_file(str(value), exclusive=self.exclusive, mode=self.mode)
