# wasp's Python runner: the program Debian's unmodified python3 runs in a Python virtine
# (docs/python.md). It loads the handler module placed at /wasp/handler.py, hands it the warm-up
# inputs of /wasp/warmup.json, then reaches the snapshot point (access("/dev/wasp/snapshot")):
# every later call resumes there, reads its arguments from stdin ("A" and a JSON array; nothing:
# load only), calls handler(*args) and writes the result as JSON on stdout. print() and the rest
# of the handler's sys.stdout go to stderr, the call's console. An exception is reported as a JSON
# envelope {name, message, stack, phase[, line, column]} with an exit status saying its kind:
#   0 ok, 1 raised, 2 syntax error, 3 out of memory, 4 recursion too deep, 5 bad input, 7 setup
# The process ends with os._exit: the interpreter's finalization would only dirty pages that the
# reset must copy back.
import os
import sys


def _main():
    import json
    import linecache
    import traceback
    import types

    name = sys.argv[1] if len(sys.argv) > 1 else "handler.py"
    console = sys.stderr

    def finish(status, text):
        try:
            console.flush()
        except BaseException:
            pass
        data = text.encode("utf-8", "surrogatepass") if text is not None else b""
        while data:
            n = os.write(1, data)
            data = data[n:]
        os._exit(status)

    def report(e, phase, status=None):
        if status is None:
            if isinstance(e, MemoryError):
                status = 3
            elif isinstance(e, RecursionError):
                status = 4
            elif isinstance(e, SyntaxError) and phase == "load":
                status = 2
            else:
                status = 1
        # the runner's own frames are not the handler's story
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        try:
            stack = "".join(traceback.format_exception(type(e), e, tb))
        except BaseException:
            stack = ""
        try:
            message = str(e.msg if isinstance(e, SyntaxError) and e.msg else e)
        except BaseException:
            message = "(the exception's message could not be made)"
        envelope = {"name": type(e).__name__, "message": message, "stack": stack, "phase": phase}
        if status == 2 and isinstance(e.lineno, int) and e.lineno >= 1:
            envelope["line"] = e.lineno
            envelope["column"] = e.offset if isinstance(e.offset, int) and e.offset >= 1 else 1
        finish(status, json.dumps(envelope))

    # the handler's print() is its console: stdout carries only the result
    sys.stdout = console
    phase = "load"
    try:
        with open("/wasp/handler.py", "rb") as f:
            source = f.read()
        # tracebacks show the module's lines under its own name
        text = source.decode("utf-8", "replace")
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        module = types.ModuleType("handler")
        module.__file__ = name
        sys.modules["handler"] = module
        exec(compile(source, name, "exec"), module.__dict__)
        handler = module.__dict__.get("handler")
        if not callable(handler):
            raise TypeError("the module defines no handler(event) function")
        phase = "warmup"
        if os.path.exists("/wasp/warmup.json"):
            with open("/wasp/warmup.json", "rb") as f:
                for args in json.loads(f.read()):
                    handler(*args)
    except BaseException as e:
        report(e, phase)

    # libc's write wrapper reached once before the snapshot: its `syscall` site is rewritten in the
    # snapshot, so that a call's output does not leave the VM (sites a call reaches first after
    # the snapshot's training are rewritten for that call only)
    os.write(1, b"")
    # the snapshot point: what ran before is not run again
    os.access("/dev/wasp/snapshot", os.F_OK)

    data = sys.stdin.buffer.read()
    if not data:
        finish(0, None)
    try:
        if data[:1] != b"A":
            raise ValueError("the call's input is not 'A' and a JSON array")
        args = json.loads(data[1:])
        if not isinstance(args, list):
            raise ValueError("the call's arguments are not a JSON array")
    except BaseException as e:
        report(e, "call", 5)
    try:
        result = handler(*args)
        text = json.dumps(result, allow_nan=False, ensure_ascii=False)
    except BaseException as e:
        report(e, "call")
    finish(0, text)


try:
    _main()
except BaseException:
    os._exit(7)
