#!/usr/bin/env bash
# Builds CPython 3.11 for WASI from Debian's sources, with Debian's clang and
# wasi-libc, and pre-initializes it with Wizer. Usage:
#
#   tools/python-wasm/build.sh OUT_DIR WORK_DIR
#
# OUT_DIR receives:
#   vane-python.wasm       the interpreter as a WASI reactor exporting vane_init
#                          and vane_run (see vane_entry.c), stripped
#   vane-python.snap.wasm  the same after Wizer ran vane_init: the interpreter
#                          initialized and the common modules imported
#   stdlib/lib/python3.11  the standard library as a sourceless .pyc tree,
#                          mounted read-only at /usr/local in the guest
#   VERSION                what was built, from what
# WORK_DIR keeps sources and objects between runs; it is wiped when the
# source-stage inputs (versions, checksums, patches) change.
#
# Needs root for apt-get install (as in CI). Sources come from Debian's source
# packages through a private sources list derived from the system's own, so the
# system's apt state is left untouched.
set -euo pipefail

OUT=${1:?usage: build.sh OUT_DIR WORK_DIR}
WORK=${2:?usage: build.sh OUT_DIR WORK_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)

PY_SRC_VERSION=3.11.2-6+deb12u8
PY_ORIG=python3.11_3.11.2.orig.tar.gz
PY_ORIG_SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849
ZLIB_SRC_VERSION=1:1.2.13.dfsg-1
ZLIB_ORIG=zlib_1.2.13.dfsg.orig.tar.bz2
ZLIB_ORIG_SHA256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
WIZER_PKG=@bytecodealliance/wizer-linux-x64@11.0.3
WIZER_SHA256=a081ff0c2f2689e84680189d1a17b3369bab8c8c04490c5ee8179cba44a34a98
APT_PACKAGES="clang-16 lld-16 llvm-16 wasi-libc libclang-rt-16-dev-wasm32 python3.11 bzip2 patch make"
BUILD_PYTHON=/usr/bin/python3.11

step() { printf '\n==> python-wasm: %s\n' "$*"; }

# --- 1. toolchain ----------------------------------------------------------
missing=""
for p in $APT_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	step "installing Debian packages:$missing"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
command -v npm >/dev/null || { echo "python-wasm: npm is needed to install Wizer" >&2; exit 1; }

# The work dir is reused while these inputs stay the same (bump BUILD_REV when
# a change to the configure or make steps below needs a clean build).
BUILD_REV=2
SRC_KEY=$(printf '%s\n' "$BUILD_REV" "$PY_SRC_VERSION" "$PY_ORIG_SHA256" "$ZLIB_SRC_VERSION" "$ZLIB_ORIG_SHA256" |
	cat - "$HERE"/patches/*.patch | sha256sum | cut -c1-16)
if [ ! -f "$WORK/.src-$SRC_KEY" ]; then
	rm -rf "$WORK"
fi
mkdir -p "$WORK" "$OUT"
cd "$WORK"

# --- 2. sources ------------------------------------------------------------
if [ ! -f "$WORK/.fetched" ]; then
	step "fetching Debian source packages python3.11=$PY_SRC_VERSION and zlib=$ZLIB_SRC_VERSION"
	APTD="$WORK/apt"
	mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial" "$APTD/parts" "$WORK/dl"
	: > "$APTD/sources.list"
	# deb-src twins of the system's own (enabled) sources.
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && sed 's/^Types:[[:space:]]*deb$/Types: deb-src/' "$f" > "$APTD/parts/$(basename "$f")"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >> "$APTD/sources.list"
	done
	APT_OPTS=(-o "Dir::Etc::SourceList=$APTD/sources.list" -o "Dir::Etc::SourceParts=$APTD/parts"
		-o "Dir::State::Lists=$APTD/lists" -o "Dir::Cache=$APTD/cache" -o "APT::Sandbox::User=root")
	apt-get "${APT_OPTS[@]}" update -q
	(cd "$WORK/dl" && apt-get "${APT_OPTS[@]}" source --download-only -q \
		"python3.11=$PY_SRC_VERSION" "zlib=$ZLIB_SRC_VERSION")
	echo "$PY_ORIG_SHA256  dl/$PY_ORIG" | sha256sum -c -
	echo "$ZLIB_ORIG_SHA256  dl/$ZLIB_ORIG" | sha256sum -c -
	touch "$WORK/.fetched"
fi

if [ ! -f "$WORK/.unpacked" ]; then
	step "unpacking and patching"
	rm -rf Python-3.11.2 zlib-1.2.13.dfsg
	tar xzf "dl/$PY_ORIG"
	tar xjf "dl/$ZLIB_ORIG"
	for p in "$HERE"/patches/*.patch; do
		patch -d Python-3.11.2 -p1 --forward < "$p"
	done
	touch "$WORK/.unpacked" "$WORK/.src-$SRC_KEY"
fi

WASI_CC="clang-16 --target=wasm32-wasi"

# --- 3. zlib for wasm32-wasi -----------------------------------------------
ZLIB_DIR="$WORK/zlib-1.2.13.dfsg"
if [ ! -f "$ZLIB_DIR/libz.a" ]; then
	step "building zlib for wasm32-wasi"
	(cd "$ZLIB_DIR" &&
		for c in adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast inflate inftrees trees uncompr zutil; do
			$WASI_CC -O2 -Wno-deprecated-non-prototype -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -c "$c.c" -o "$c.o"
		done &&
		llvm-ar-16 rcs libz.a ./*.o)
fi

# --- 4. CPython ------------------------------------------------------------
PYDIR="$WORK/Python-3.11.2"
cd "$PYDIR"
if [ ! -f Makefile ]; then
	# pkg-config must not find the build machine's libraries (lzma, uuid, ...).
	mkdir -p "$WORK/no-pkgconfig"
	step "configuring CPython 3.11.2 for wasm32-wasi"
	CONFIG_SITE=Tools/wasm/config.site-wasm32-wasi \
	ac_cv_func_clock_nanosleep=no ac_cv_lib_rt_clock_nanosleep=no \
	ZLIB_CFLAGS="-I$ZLIB_DIR" ZLIB_LIBS="-L$ZLIB_DIR -lz" \
	PKG_CONFIG_LIBDIR="$WORK/no-pkgconfig" PKG_CONFIG_PATH="" \
	./configure -q --host=wasm32-unknown-wasi --build="$(./config.guess)" \
		--with-build-python="$BUILD_PYTHON" --disable-test-modules \
		CC="$WASI_CC" LDSHARED=wasm-ld-16 AR=llvm-ar-16 RANLIB=llvm-ranlib-16
fi
step "compiling CPython (make -j2)"
make -s -j2 all >/dev/null
grep -q '^zlib' Modules/Setup.stdlib || { echo "python-wasm: zlib module not configured" >&2; exit 1; }

step "linking the vane reactor (vane_init / vane_run)"
make -s -f Makefile -f "$HERE/vane.mk" VANE_ENTRY_C="$HERE/vane_entry.c" vane-python.wasm

# --- 5. the standard library as .pyc ---------------------------------------
step "compiling the standard library to a sourceless .pyc tree"
STAGE="$WORK/stdlib.new"
rm -rf "$STAGE"
mkdir -p "$STAGE/lib"
cp -r Lib "$STAGE/lib/python3.11"
LIBDIR="$STAGE/lib/python3.11"
rm -rf "$LIBDIR"/{test,tkinter,idlelib,turtledemo,ensurepip,lib2to3,venv,__phello__} \
	"$LIBDIR"/{distutils,unittest,ctypes,sqlite3}/test* "$LIBDIR"/turtle.py
find "$LIBDIR" -name '__pycache__' -prune -exec rm -rf {} +
cp build/lib.wasi-wasm32-3.11/_sysconfigdata__wasi_wasm32-wasi.py "$LIBDIR/"
cp "$HERE/vane_wrapper.py" "$HERE/vane_net.py" "$LIBDIR/"
# The stdlib's ssl.py needs _ssl (OpenSSL), which WASI has not: vane's ssl
# module makes TLS handshakes in the host (vane_ssl.py says how).
cp "$HERE/vane_ssl.py" "$LIBDIR/ssl.py"
mkdir -p "$LIBDIR/lib-dynload"
"$BUILD_PYTHON" -m compileall -q -b -j 2 -d /usr/local/lib/python3.11 "$LIBDIR" >/dev/null
find "$LIBDIR" -name '*.py' -delete

# --- 6. Wizer ----------------------------------------------------------------
WIZER="$WORK/wizer/node_modules/@bytecodealliance/wizer-linux-x64/wizer"
if [ ! -x "$WIZER" ]; then
	step "installing Wizer ($WIZER_PKG) from the npm registry"
	mkdir -p "$WORK/wizer"
	npm install --prefix "$WORK/wizer" --ignore-scripts --no-save --no-audit --no-fund --loglevel=error "$WIZER_PKG"
fi
echo "$WIZER_SHA256  $WIZER" | sha256sum -c -

step "pre-initializing the interpreter with Wizer"
EMPTY="$WORK/empty"
mkdir -p "$EMPTY/packages" "$EMPTY/script" "$EMPTY/job"
llvm-strip-16 -o "$WORK/vane-python.wasm" vane-python.wasm
# The guest's preopened directories must be, in this order, the ones the
# executor mounts (runtime/python/guest.go): wasi-libc numbers them at init.
"$WIZER" "$WORK/vane-python.wasm" -o "$WORK/vane-python.snap.wasm" \
	--allow-wasi --init-func vane_init \
	--mapdir "/::$EMPTY/job" \
	--mapdir "/usr/local::$STAGE" \
	--mapdir "/packages::$EMPTY/packages" \
	--mapdir "/script::$EMPTY/script"

# --- 7. output -------------------------------------------------------------
step "installing into $OUT"
rm -rf "$OUT/stdlib"
mv "$STAGE" "$OUT/stdlib"
cp "$WORK/vane-python.wasm" "$OUT/vane-python.wasm"
cp "$WORK/vane-python.snap.wasm" "$OUT/vane-python.snap.wasm"
{
	echo "CPython 3.11.2 for wasm32-wasi"
	echo "python3.11 source: $PY_SRC_VERSION ($PY_ORIG sha256 $PY_ORIG_SHA256)"
	echo "zlib source: $ZLIB_SRC_VERSION ($ZLIB_ORIG sha256 $ZLIB_ORIG_SHA256)"
	echo "toolchain: $(clang-16 --version | head -1); wasi-libc $(dpkg-query -W -f='${Version}' wasi-libc)"
	echo "wizer: $WIZER_PKG"
} > "$OUT/VERSION"
ls -la "$OUT"
step "done"
