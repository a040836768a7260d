/* wasp's JavaScript runtime: QuickJS (2021-03-27) as a static Linux guest, `dist/guests/js.elf`.
 *
 * A call of a JavaScript virtine is a call of this program (docs/js.md):
 *   argv   wasp-js [--name NAME] [--heap BYTES] [--stack BYTES]      (fixed for a virtine)
 *   files  /wasp/handler.js  the user's ES module (its default export is the handler)
 *          /wasp/warmup.json optional: a JSON array of argument lists, each a call made before
 *                            the snapshot
 *   stdin  empty: load only (compile, warm up, snapshot, exit 0);
 *          'A' + a JSON array: call the handler with those arguments
 *   stdout the handler's result as JSON (nothing for undefined), or the error's envelope
 *   stderr console.log / console.error
 *   status 0 ok, or one of the ST_* below: the host turns it into a typed error.
 * Between loading and reading stdin it calls wasp_snapshot(): every later call resumes there,
 * with the engine warm and the module compiled.
 *
 * `wasp-js --run MODULE [options] < call` runs one call natively (no snapshot), to try the engine.
 * `wasp-js --bench cold|warm N MODULE INPUT` runs natively (not in a virtine) and times N calls
 * itself: `wasp bench`'s js_native (a runtime and context made, the module evaluated, the handler
 * called and everything freed per call) and js_native_warm (the context reused).
 *
 * The runtime is compiled in the same unit as the engine, for three of its internals: the module
 * namespace (the handler), a settled promise's state, and Math.random's state (reseeded after
 * the snapshot point). The build adds one line to the engine's js_parse_error (build.zig) so a
 * syntax error says its column. */
#define WASP_PARSE_ERROR_HOOK(s) wasp_parse_error_at((const char *)(s)->token.ptr)
static void wasp_parse_error_at(const char *at);
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Weverything" /* the engine's warnings are not ours to fix */
#include "quickjs.c"
#pragma clang diagnostic pop
/* the engine forbids the C allocator to itself (its memory goes through its own accounting);
 * the runtime's own buffers use it */
#undef malloc
#undef free
#undef realloc

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wasp.h>

#define MODULE_PATH "/wasp/handler.js"
#define WARMUP_PATH "/wasp/warmup.json"
#define MAX_SOURCE (64u << 20)

/* exit statuses: the call's outcome, read by src/js/reply.ts */
enum {
  ST_OK = 0,
  ST_THROWN = 1,    /* the module or the handler threw, or its promise rejected */
  ST_SYNTAX = 2,    /* the module does not parse */
  ST_MEMORY = 3,    /* the engine's heap limit */
  ST_STACK = 4,     /* the engine's stack limit */
  ST_BAD_INPUT = 5, /* stdin is not a call */
  ST_UNSETTLED = 6, /* the handler's promise never settled */
  ST_SETUP = 7,     /* the runtime could not start (its files, its memory) */
};

/* -- the output ------------------------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return; /* the host caps the streams: what is past the cap is dropped */
    p += w;
    n -= (size_t)w;
  }
}

static void out_str(const char *s) { write_all(1, s, strlen(s)); }

/* A JSON string of n bytes (the engine's CESU-8/UTF-8), escaped: the host parses it with JSON.parse. */
static void out_json_string(const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  char buf[512];
  size_t k = 0;
  buf[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (k > sizeof buf - 8) {
      write_all(1, buf, k);
      k = 0;
    }
    if (c == '"' || c == '\\') {
      buf[k++] = '\\';
      buf[k++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      buf[k++] = '\\';
      buf[k++] = 'u';
      buf[k++] = '0';
      buf[k++] = '0';
      buf[k++] = hex[c >> 4];
      buf[k++] = hex[c & 15];
    } else {
      buf[k++] = (char)c;
    }
  }
  buf[k++] = '"';
  write_all(1, buf, k);
}

static void out_field(const char *key, const char *value, int first) {
  out_str(first ? "{\"" : ",\"");
  out_str(key);
  out_str("\":");
  out_json_string(value, strlen(value));
}

static void out_int_field(const char *key, long v) {
  char num[32];
  snprintf(num, sizeof num, "%ld", v);
  out_str(",\"");
  out_str(key);
  out_str("\":");
  out_str(num);
}

/* The engine's allocator with one addition: it notes that an allocation was refused. Out of
 * memory, the engine may throw null instead of its InternalError (it cannot allocate the error
 * object), so the note is what tells a memory error apart. */
static int heap_refused;

static void *counted_malloc(JSMallocState *s, size_t n) {
  void *p = js_def_malloc(s, n);
  if (!p) heap_refused = 1;
  return p;
}

static void *counted_realloc(JSMallocState *s, void *ptr, size_t n) {
  void *p = js_def_realloc(s, ptr, n);
  if (!p && n) heap_refused = 1;
  return p;
}

static const JSMallocFunctions counted_malloc_funcs = {counted_malloc, js_def_free, counted_realloc, js_def_malloc_usable_size};

/* -- errors --------------------------------------------------------------------------------- */

static const char *source_start, *source_end; /* the module's text, while it is parsed */
static const char *parse_error_at;            /* where the parser stopped (the hook) */

static void wasp_parse_error_at(const char *at) {
  if (source_start && at >= source_start && at <= source_end) parse_error_at = at;
}

/* A property of the thrown value as a string, or the fallback (also when memory is out). */
static char *prop_string(JSContext *ctx, JSValueConst v, const char *name, const char *fallback) {
  const char *s = NULL;
  if (JS_IsObject(v)) {
    JSValue p = JS_GetPropertyStr(ctx, v, name);
    if (JS_IsException(p)) {
      JS_FreeValue(ctx, JS_GetException(ctx));
    } else if (!JS_IsUndefined(p)) {
      s = JS_ToCString(ctx, p);
      if (!s) JS_FreeValue(ctx, JS_GetException(ctx));
    }
    JS_FreeValue(ctx, p);
  }
  char *copy = strdup(s ? s : fallback);
  if (s) JS_FreeCString(ctx, s);
  return copy ? copy : (char *)"";
}

/* Reports the pending exception as the call's outcome and exits. */
static __attribute__((noreturn)) void fail(JSContext *ctx, const char *phase, int syntax) {
  JSValue e = JS_GetException(ctx);
  char *name, *message, *stack;
  if (JS_IsObject(e)) {
    name = prop_string(ctx, e, "name", "Error");
    message = prop_string(ctx, e, "message", "");
    stack = prop_string(ctx, e, "stack", "");
  } else {
    /* a thrown non-Error: its string form */
    const char *s = JS_ToCString(ctx, e);
    if (!s) JS_FreeValue(ctx, JS_GetException(ctx));
    name = strdup("");
    message = strdup(s ? s : "(a value that cannot be shown)");
    if (s) JS_FreeCString(ctx, s);
    stack = strdup("");
    if (!name || !message || !stack) name = message = stack = (char *)"";
  }
  int status = ST_THROWN;
  int internal = strcmp(name, "InternalError") == 0;
  if ((internal && strcmp(message, "out of memory") == 0) || (heap_refused && JS_IsNull(e))) status = ST_MEMORY;
  else if (internal && strcmp(message, "stack overflow") == 0) status = ST_STACK;
  else if (syntax && strcmp(name, "SyntaxError") == 0 && parse_error_at && source_start) status = ST_SYNTAX;
  out_field("name", name, 1);
  out_field("message", message, 0);
  out_field("stack", stack, 0);
  out_field("phase", phase, 0);
  if (status == ST_SYNTAX) {
    long line = 1, column = 1;
    for (const char *p = source_start; p < parse_error_at; p++) {
      if (*p == '\n') {
        line++;
        column = 1;
      } else if (((unsigned char)*p & 0xc0) != 0x80) {
        column++; /* a column counts code points */
      }
    }
    out_int_field("line", line);
    out_int_field("column", column);
  }
  out_str("}");
  exit(status);
}

static __attribute__((noreturn)) void fail_setup(const char *what) {
  out_field("name", "Error", 1);
  out_field("message", what, 0);
  out_field("phase", "setup", 0);
  out_str("}");
  exit(ST_SETUP);
}

/* -- console ----------------------------------------------------------------------------------- */

/* One argument as console.log shows it: a string as it is, an Error as its stack, anything else
 * as JSON when it has a JSON form, else as String() gives it. */
static void console_arg(JSContext *ctx, JSValueConst v, char **buf, size_t *len) {
  JSValue shown = JS_UNDEFINED;
  if (JS_IsString(v)) {
    shown = JS_DupValue(ctx, v);
  } else if (JS_IsError(ctx, v)) {
    JSValue stack = JS_GetPropertyStr(ctx, v, "stack");
    JSValue head = JS_ToString(ctx, v);
    if (!JS_IsException(head) && JS_IsString(stack)) {
      const char *h = JS_ToCString(ctx, head), *s = JS_ToCString(ctx, stack);
      if (h && s) {
        char *joined = malloc(strlen(h) + strlen(s) + 2);
        if (joined) {
          sprintf(joined, "%s\n%s", h, s);
          size_t n = strlen(joined);
          if (n && joined[n - 1] == '\n') joined[n - 1] = 0;
          shown = JS_NewString(ctx, joined);
          free(joined);
        }
      }
      if (h) JS_FreeCString(ctx, h);
      if (s) JS_FreeCString(ctx, s);
    }
    if (JS_IsUndefined(shown)) shown = JS_DupValue(ctx, head);
    JS_FreeValue(ctx, head);
    JS_FreeValue(ctx, stack);
  } else if (JS_IsObject(v) && !JS_IsFunction(ctx, v)) {
    shown = JS_JSONStringify(ctx, v, JS_UNDEFINED, JS_UNDEFINED);
    if (JS_IsException(shown)) {
      JS_FreeValue(ctx, JS_GetException(ctx)); /* cyclic, a BigInt inside: String() below */
      shown = JS_UNDEFINED;
    }
  }
  if (JS_IsUndefined(shown) && JS_IsSymbol(v)) {
    /* a symbol has no implicit string form: its own toString gives "Symbol(description)" */
    JSValue f = JS_GetPropertyStr(ctx, v, "toString");
    shown = JS_IsFunction(ctx, f) ? JS_Call(ctx, f, v, 0, NULL) : JS_UNDEFINED;
    JS_FreeValue(ctx, f);
    if (JS_IsException(shown)) {
      JS_FreeValue(ctx, JS_GetException(ctx));
      shown = JS_UNDEFINED;
    }
  }
  if (JS_IsUndefined(shown)) shown = JS_ToString(ctx, v);
  if (JS_IsException(shown)) {
    JS_FreeValue(ctx, JS_GetException(ctx));
    shown = JS_NewString(ctx, "(a value that cannot be shown)");
  }
  size_t n;
  const char *s = JS_ToCStringLen(ctx, &n, shown);
  JS_FreeValue(ctx, shown);
  if (!s) {
    JS_FreeValue(ctx, JS_GetException(ctx));
    return;
  }
  char *grown = realloc(*buf, *len + n + 2);
  if (grown) {
    *buf = grown;
    if (*len) grown[(*len)++] = ' ';
    memcpy(grown + *len, s, n);
    *len += n;
  }
  JS_FreeCString(ctx, s);
}

static JSValue js_console_print(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  char *buf = NULL;
  size_t len = 0;
  for (int i = 0; i < argc; i++) console_arg(ctx, argv[i], &buf, &len);
  char *line = realloc(buf, len + 1);
  if (line) {
    line[len++] = '\n';
    write_all(2, line, len);
    free(line);
  } else {
    free(buf);
  }
  return JS_UNDEFINED;
}

static void add_console(JSContext *ctx) {
  static const char *names[] = {"log", "info", "debug", "warn", "error", "trace"};
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue console = JS_NewObject(ctx);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    JS_SetPropertyStr(ctx, console, names[i], JS_NewCFunction(ctx, js_console_print, names[i], 1));
  JS_SetPropertyStr(ctx, global, "console", console);
  JS_FreeValue(ctx, global);
}

/* -- time and randomness ------------------------------------------------------------------- */

/* The engine reads the clock (Date.now(), new Date()) through gettimeofday. In a virtine without
 * the `time` grant the clock is refused (-EPERM) and musl's gettimeofday would leave the engine's
 * timeval unset: here the refused clock reads as the epoch, 1970-01-01T00:00:00Z. */
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
  (void)tz;
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) ts.tv_sec = ts.tv_nsec = 0;
  if (tv) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return 0;
}

/* Math.random's state, after the snapshot point: the host's randomness with the `random` grant;
 * without it a fixed seed, so that a call is deterministic (and learns no host entropy). Either
 * way no call sees the state the snapshot froze. */
static void seed_random(JSContext *ctx) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed || seed == 0) seed = 0x2545f4914f6cdd1dull;
  ctx->random_state = seed;
}

/* -- the engine ------------------------------------------------------------------------------- */

static JSModuleDef *no_imports(JSContext *ctx, const char *name, void *opaque) {
  (void)opaque;
  JS_ThrowReferenceError(ctx, "cannot import '%s': a JavaScript virtine is one module, with no imports", name);
  return NULL;
}

typedef struct {
  JSRuntime *rt;
  JSContext *ctx;
  JSValue handler;
} Engine;

static int engine_new(Engine *e, size_t heap, size_t stack) {
  e->rt = JS_NewRuntime2(&counted_malloc_funcs, NULL);
  if (!e->rt) return -1;
  if (heap) JS_SetMemoryLimit(e->rt, heap);
  if (stack) JS_SetMaxStackSize(e->rt, stack);
  JS_SetCanBlock(e->rt, FALSE); /* one thread: Atomics.wait could never be woken */
  JS_SetModuleLoaderFunc(e->rt, NULL, no_imports, NULL);
  e->ctx = JS_NewContext(e->rt);
  if (!e->ctx) return -1;
  add_console(e->ctx);
  e->handler = JS_UNDEFINED;
  return 0;
}

static void engine_free(Engine *e) {
  JS_FreeValue(e->ctx, e->handler);
  JS_FreeContext(e->ctx);
  JS_FreeRuntime(e->rt);
}

/* Runs the jobs promises queued; returns -1 with the exception pending when one threw. */
static int drain_jobs(JSRuntime *rt) {
  JSContext *c;
  for (;;) {
    int r = JS_ExecutePendingJob(rt, &c);
    if (r <= 0) return r;
  }
}

/* Compiles and evaluates the module (src[len] must be 0), keeping its default export. */
static int engine_load(Engine *e, const char *src, size_t len, const char *name) {
  JSContext *ctx = e->ctx;
  source_start = src;
  source_end = src + len;
  parse_error_at = NULL;
  JSValue module = JS_Eval(ctx, src, len, name, JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  if (JS_IsException(module)) return -2; /* the text stays known: fail() says where the parser stopped */
  source_start = source_end = NULL;
  JSModuleDef *m = JS_VALUE_GET_PTR(module);
  JSValue r = JS_EvalFunction(ctx, module); /* links (no imports) and runs the module's body */
  if (JS_IsException(r)) return -1;
  JS_FreeValue(ctx, r);
  if (drain_jobs(e->rt) < 0) return -1;
  JSValue ns = js_get_module_ns(ctx, m);
  if (JS_IsException(ns)) return -1;
  JSValue handler = JS_GetProperty(ctx, ns, JS_ATOM_default);
  JS_FreeValue(ctx, ns);
  if (JS_IsException(handler)) return -1;
  if (!JS_IsFunction(ctx, handler)) {
    JS_FreeValue(ctx, handler);
    JS_ThrowTypeError(ctx, "the module's default export is not a function: write `export default (input) => output`");
    return -1;
  }
  e->handler = handler;
  return 0;
}

/* Calls the handler with the arguments (a JSON array's text, NUL-terminated) and settles its
 * promise. Returns the result (owned), JS_EXCEPTION, or JS_UNINITIALIZED for a promise that never
 * settled. */
static JSValue engine_call(Engine *e, const char *json, size_t len) {
  JSContext *ctx = e->ctx;
  JSValue list = JS_ParseJSON(ctx, json, len, "<input>");
  if (JS_IsException(list)) return JS_EXCEPTION;
  if (!JS_IsArray(ctx, list)) {
    JS_FreeValue(ctx, list);
    JS_ThrowTypeError(ctx, "a call's arguments are a JSON array");
    return JS_EXCEPTION;
  }
  int64_t n = 0;
  JSValue lenv = JS_GetPropertyStr(ctx, list, "length");
  JS_ToInt64(ctx, &n, lenv);
  JS_FreeValue(ctx, lenv);
  if (n < 0 || n > 64) {
    JS_FreeValue(ctx, list);
    JS_ThrowRangeError(ctx, "a call has at most 64 arguments");
    return JS_EXCEPTION;
  }
  JSValue argv[64];
  for (int64_t i = 0; i < n; i++) argv[i] = JS_GetPropertyUint32(ctx, list, (uint32_t)i);
  JSValue r = JS_Call(ctx, e->handler, JS_UNDEFINED, (int)n, (JSValueConst *)argv);
  for (int64_t i = 0; i < n; i++) JS_FreeValue(ctx, argv[i]);
  JS_FreeValue(ctx, list);
  if (JS_IsException(r)) return r;
  if (drain_jobs(e->rt) < 0) {
    JS_FreeValue(ctx, r);
    return JS_EXCEPTION;
  }
  JSPromiseData *p = JS_GetOpaque(r, JS_CLASS_PROMISE);
  if (!p) return r;
  JSValue settled = JS_UNINITIALIZED;
  if (p->promise_state == JS_PROMISE_FULFILLED) {
    settled = JS_DupValue(ctx, p->promise_result);
  } else if (p->promise_state == JS_PROMISE_REJECTED) {
    settled = JS_Throw(ctx, JS_DupValue(ctx, p->promise_result));
  }
  JS_FreeValue(ctx, r);
  return settled;
}

/* -- files -------------------------------------------------------------------------------------- */

/* A whole file, NUL-terminated; NULL when it is not there. */
static char *read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) fail_setup("out of memory reading a file");
    if (n == cap) {
      if (cap >= MAX_SOURCE) fail_setup("a file of the virtine is over 64 MiB");
      cap *= 2;
      buf = realloc(buf, cap + 1);
      continue;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) fail_setup("cannot read a file of the virtine");
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  *len = n;
  return buf;
}

static char *read_stdin(size_t *len) {
  size_t cap = 1 << 12, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) fail_setup("out of memory reading the input");
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
      continue;
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

/* -- a call ------------------------------------------------------------------------------------- */

static __attribute__((noreturn)) void answer(Engine *e, JSValue r) {
  JSContext *ctx = e->ctx;
  if (JS_IsException(r)) fail(ctx, "call", 0);
  if (JS_VALUE_GET_TAG(r) == JS_TAG_UNINITIALIZED) {
    out_field("name", "Error", 1);
    out_field("message", "the handler's promise never settled (a virtine has no timers or I/O to wait for)", 0);
    out_field("phase", "call", 0);
    out_str("}");
    exit(ST_UNSETTLED);
  }
  JSValue text = JS_JSONStringify(ctx, r, JS_UNDEFINED, JS_UNDEFINED);
  JS_FreeValue(ctx, r);
  if (JS_IsException(text)) fail(ctx, "call", 0); /* a BigInt, a cycle: the handler's result has no JSON */
  if (!JS_IsUndefined(text)) {
    size_t n;
    const char *s = JS_ToCStringLen(ctx, &n, text);
    if (!s) fail(ctx, "call", 0);
    write_all(1, s, n);
    JS_FreeCString(ctx, s);
  }
  JS_FreeValue(ctx, text);
  exit(ST_OK);
}

static void warm_up(Engine *e) {
  size_t len;
  char *text = read_file(WARMUP_PATH, &len);
  if (!text) return;
  JSContext *ctx = e->ctx;
  JSValue calls = JS_ParseJSON(ctx, text, len, "warmup.json");
  if (JS_IsException(calls)) fail(ctx, "warmup", 0);
  int64_t n = 0;
  JSValue lenv = JS_GetPropertyStr(ctx, calls, "length");
  JS_ToInt64(ctx, &n, lenv);
  JS_FreeValue(ctx, lenv);
  for (int64_t i = 0; i < n; i++) {
    JSValue args = JS_GetPropertyUint32(ctx, calls, (uint32_t)i);
    JSValue argsText = JS_JSONStringify(ctx, args, JS_UNDEFINED, JS_UNDEFINED);
    JS_FreeValue(ctx, args);
    if (JS_IsException(argsText)) fail(ctx, "warmup", 0);
    size_t alen;
    const char *a = JS_ToCStringLen(ctx, &alen, argsText);
    JS_FreeValue(ctx, argsText);
    if (!a) fail(ctx, "warmup", 0);
    JSValue r = engine_call(e, a, alen);
    JS_FreeCString(ctx, a);
    if (JS_IsException(r)) fail(ctx, "warmup", 0);
    JS_FreeValue(ctx, r);
  }
  JS_FreeValue(ctx, calls);
  free(text);
}

static size_t parse_size(const char *s) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (*s == 0 || *end != 0) fail_setup("a size option is not a number");
  return (size_t)v;
}

/* -- natively: js_native and js_native_warm ------------------------------------------------ */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bench(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: wasp-js --bench cold|warm N MODULE INPUT\n");
    return 2;
  }
  int warm = strcmp(argv[2], "warm") == 0;
  long n = strtol(argv[3], NULL, 10);
  size_t srclen, inlen = strlen(argv[5]);
  char *src = read_file(argv[4], &srclen);
  if (!src || n <= 0) return 2;
  uint64_t *samples = calloc((size_t)n, sizeof *samples);
  size_t checksum = 0;
  Engine e;
  if (warm && (engine_new(&e, 0, 0) || engine_load(&e, src, srclen, "bench.js"))) return 3;
  for (long i = 0; i < n; i++) {
    uint64_t t0 = now_ns();
    if (!warm && (engine_new(&e, 0, 0) || engine_load(&e, src, srclen, "bench.js"))) return 3;
    JSValue r = engine_call(&e, argv[5], inlen);
    if (JS_IsException(r) || JS_VALUE_GET_TAG(r) == JS_TAG_UNINITIALIZED) return 4;
    JSValue text = JS_JSONStringify(e.ctx, r, JS_UNDEFINED, JS_UNDEFINED);
    size_t len = 0;
    const char *s = JS_ToCStringLen(e.ctx, &len, text);
    checksum += len;
    JS_FreeCString(e.ctx, s);
    JS_FreeValue(e.ctx, text);
    JS_FreeValue(e.ctx, r);
    if (!warm) engine_free(&e);
    samples[i] = now_ns() - t0;
  }
  for (long i = 0; i < n; i++) printf("%llu\n", (unsigned long long)samples[i]);
  fprintf(stderr, "result bytes %zu\n", checksum);
  return 0;
}

/* -- a virtine's call ---------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench(argc, argv);
  /* natively, for trying the engine without a virtine: `js.elf --run MODULE [options] < call` */
  int native = argc > 2 && strcmp(argv[1], "--run") == 0;
  const char *module_path = native ? argv[2] : MODULE_PATH;
  const char *name = "handler.js";
  size_t heap = 0, stack = 0;
  for (int i = native ? 3 : 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--name") == 0) name = argv[i + 1];
    else if (strcmp(argv[i], "--heap") == 0) heap = parse_size(argv[i + 1]);
    else if (strcmp(argv[i], "--stack") == 0) stack = parse_size(argv[i + 1]);
    else fail_setup("unknown option");
  }
  Engine e;
  if (engine_new(&e, heap, stack)) {
    /* the runtime or its context did not fit the heap limit */
    out_field("name", "InternalError", 1);
    out_field("message", "out of memory", 0);
    out_field("phase", "load", 0);
    out_str("}");
    exit(ST_MEMORY);
  }
  size_t srclen;
  char *src = read_file(module_path, &srclen);
  if (!src) fail_setup("no module to run");
  int r = engine_load(&e, src, srclen, name);
  if (r == -2) fail(e.ctx, "load", 1);
  if (r < 0) fail(e.ctx, "load", 0);
  free(src);
  warm_up(&e);
  JS_RunGC(e.rt);
  /* The next automatic collection once the heap grows by half, as the engine sets it after one of
   * its own: otherwise the threshold left by the last automatic collection during load could be
   * just above the heap, and every call would start with a full collection — which writes to
   * every object, so every page of the heap would be dirtied (and reset) by every call. */
  JS_SetGCThreshold(e.rt, e.rt->malloc_state.malloc_size + (e.rt->malloc_state.malloc_size >> 1));

  heap_refused = 0; /* a refusal the module or its warm-up survived is not the call's */
  if (!native) wasp_snapshot(); /* every later call of this virtine starts here */

  seed_random(e.ctx);
  size_t len;
  char *input = read_stdin(&len);
  if (len == 0) exit(ST_OK); /* load only */
  if (input[0] != 'A') {
    out_field("name", "Error", 1);
    out_field("message", "the call's input is not a call", 0);
    out_field("phase", "call", 0);
    out_str("}");
    exit(ST_BAD_INPUT);
  }
  answer(&e, engine_call(&e, input + 1, len - 1));
}
