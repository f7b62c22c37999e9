#!/usr/bin/env bash
# The dependency bundle's build, run by scripts/make-deps-bundle.sh inside a
# Debian 12 (bookworm) root -- its chroot, or any Debian 12 machine or
# container where you are root (make-deps-bundle.sh --here). Installs what it
# needs with apt-get and writes the prefix into PREFIX (emptied first):
#
#   static archives from Debian's -dev packages, where they are small and
#   self-contained: zlib, libjpeg-turbo, libpng, Protobuf, OpenSSL's libcrypto
#   (+ their headers); nlohmann-json (headers and CMake package);
#   built from Debian's source packages, static, with CMake packages: fmt,
#   spdlog, GoogleTest, libarchive (tar only: no compression libraries, XML,
#   ACLs or crypto), OpenCV (core, imgproc, imgcodecs; JPEG and PNG only; no
#   GDAL, GUI, video, IPP, OpenCL or TBB);
#   protoc, linked statically (runs on any x86-64 Linux);
#   MANIFEST (versions, licences, what the target's C and C++ libraries must
#   provide) and share/licenses/*/copyright.
#
# usage (from the repository root): bash scripts/deps-bundle/build-inside.sh PREFIX
set -euo pipefail
P=$1
WORK=${CONVOY_BUNDLE_WORK:-/var/cache/convoy-bundle}
JOBS=$(nproc)
say() { echo "deps-bundle: $*" >&2; }
t0=$(date +%s)

. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || say "warning: this is $PRETTY_NAME, not Debian 12; versions will differ"

say "packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update >/dev/null
apt-get install -y --no-install-recommends g++ cmake ninja-build ccache dpkg-dev xz-utils \
  zlib1g-dev libjpeg62-turbo-dev libpng-dev libprotobuf-dev libprotoc-dev libssl-dev \
  nlohmann-json3-dev googletest >/dev/null
ARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
LIB=/usr/lib/$ARCH

rm -rf "$P"
mkdir -p "$P"/{bin,include,lib/cmake,share/cmake,share/licenses}
P=$(cd "$P" && pwd)
MANIFEST_ROWS=()
# component NAME VERSION LICENCE HOW COPYRIGHT-FILE
component() {
  MANIFEST_ROWS+=("$(printf '%-14s %-22s %-32s %s' "$1" "$2" "$3" "$4")")
  mkdir -p "$P/share/licenses/$1"
  cp "$5" "$P/share/licenses/$1/copyright"
}
deb_version() { dpkg-query -W -f='${Version}' "$1"; }

# --- static archives and headers from Debian's -dev packages ---------------
say "static archives from Debian's packages"
cp "$LIB/libz.a" "$P/lib/"
cp /usr/include/zlib.h /usr/include/zconf.h "$P/include/"
component zlib "$(deb_version zlib1g-dev)" Zlib "libz.a from zlib1g-dev" /usr/share/doc/zlib1g-dev/copyright

cp "$LIB/libjpeg.a" "$P/lib/"
cp /usr/include/jpeglib.h /usr/include/jmorecfg.h /usr/include/jerror.h "/usr/include/$ARCH/jconfig.h" "$P/include/"
component libjpeg-turbo "$(deb_version libjpeg62-turbo-dev)" "IJG AND BSD-3-Clause AND Zlib" \
  "libjpeg.a from libjpeg62-turbo-dev" /usr/share/doc/libjpeg62-turbo-dev/copyright

cp "$LIB/libpng16.a" "$P/lib/"
ln -s libpng16.a "$P/lib/libpng.a"
cp /usr/include/libpng16/*.h "$P/include/"
component libpng "$(deb_version libpng-dev)" Libpng "libpng16.a from libpng-dev" /usr/share/doc/libpng-dev/copyright

mkdir -p "$P/include/google"
cp -r /usr/include/google/protobuf "$P/include/google/"
cp "$LIB/libprotobuf.a" "$P/lib/"
component protobuf "$(deb_version libprotobuf-dev)" BSD-3-Clause \
  "libprotobuf.a from libprotobuf-dev; bin/protoc (C++ generator) linked statically from libprotoc.a" \
  /usr/share/doc/libprotobuf-dev/copyright

cp -r /usr/include/openssl "$P/include/"
cp "/usr/include/$ARCH/openssl/"*.h "$P/include/openssl/"
cp "$LIB/libcrypto.a" "$P/lib/"
component openssl "$(deb_version libssl-dev)" Apache-2.0 "libcrypto.a from libssl-dev (no libssl)" \
  /usr/share/doc/libssl-dev/copyright

cp -r /usr/include/nlohmann "$P/include/"
cp -r /usr/share/cmake/nlohmann_json "$P/share/cmake/"
component nlohmann-json "$(deb_version nlohmann-json3-dev)" MIT "headers and CMake package from nlohmann-json3-dev" \
  /usr/share/doc/nlohmann-json3-dev/copyright

# --- protoc, static --------------------------------------------------------
say "protoc (static)"
g++ -O2 -std=c++17 -static -o "$P/bin/protoc" scripts/deps-bundle/protoc_main.cc -I/usr/include \
  "$LIB/libprotoc.a" "$LIB/libprotobuf.a" -pthread
strip "$P/bin/protoc"
"$P/bin/protoc" --version >&2

# --- built from Debian's source packages ------------------------------------
mkdir -p "$WORK/src" "$WORK/build"
export CCACHE_DIR=$WORK/ccache
# source_dir PACKAGE -> the unpacked source of Debian's source package
# (downloaded once into WORK/src).
source_dir() {
  local pkg=$1 dir
  dir=$(find "$WORK/src" -maxdepth 1 -mindepth 1 -type d -name "$pkg-*" | head -n 1)
  if [ -z "$dir" ]; then
    (cd "$WORK/src" && apt-get source --only-source "$pkg" >&2)
    dir=$(find "$WORK/src" -maxdepth 1 -mindepth 1 -type d -name "$pkg-*" | head -n 1)
  fi
  echo "$dir"
}
src_version() { (cd "$1" && dpkg-parsechangelog -S Version); }
# cmake_install NAME SOURCE-DIR CMAKE-ARGS...
cmake_install() {
  local name=$1 src=$2 t=$(date +%s)
  shift 2
  rm -rf "$WORK/build/$name"
  cmake -S "$src" -B "$WORK/build/$name" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$P" -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_PREFIX_PATH="$P" \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache "$@" >"$WORK/build/$name.log" 2>&1 ||
    { tail -n 30 "$WORK/build/$name.log" >&2; say "$name: configure failed"; exit 1; }
  cmake --build "$WORK/build/$name" -j "$JOBS" >>"$WORK/build/$name.log" 2>&1 &&
    cmake --install "$WORK/build/$name" >>"$WORK/build/$name.log" 2>&1 ||
    { tail -n 30 "$WORK/build/$name.log" >&2; say "$name: build failed"; exit 1; }
  say "$name built in $(($(date +%s) - t)) s"
}

src=$(source_dir fmtlib)
cmake_install fmt "$src" -DFMT_TEST=OFF -DFMT_DOC=OFF -DFMT_INSTALL=ON
component fmt "$(src_version "$src")" MIT "built from source package fmtlib (static)" "$src/debian/copyright"

src=$(source_dir spdlog)
cmake_install spdlog "$src" -DSPDLOG_FMT_EXTERNAL=ON -DSPDLOG_BUILD_SHARED=OFF -DSPDLOG_BUILD_EXAMPLE=OFF \
  -DSPDLOG_BUILD_TESTS=OFF -DSPDLOG_BUILD_BENCH=OFF -DSPDLOG_INSTALL=ON
component spdlog "$(src_version "$src")" MIT "built from source package spdlog (static, external fmt)" "$src/debian/copyright"

cmake_install googletest /usr/src/googletest -DBUILD_GMOCK=ON -DINSTALL_GTEST=ON
component googletest "$(deb_version googletest)" BSD-3-Clause "built from googletest's /usr/src/googletest (static)" \
  /usr/share/doc/googletest/copyright

src=$(source_dir libarchive)
# Without glibc 2.36's arc4random_buf (HAVE_ARC4RANDOM_BUF=OFF below, so that
# older glibc links it) libarchive uses its own, whose static declaration
# clashes with glibc's; it gets a name of its own (idempotent).
sed -i 's/\barc4random_buf\b/la_arc4random_buf/g' "$src/libarchive/archive_random.c"
cmake_install libarchive "$src" -DENABLE_TEST=OFF -DENABLE_TAR=OFF -DENABLE_CPIO=OFF -DENABLE_CAT=OFF \
  -DENABLE_UNZIP=OFF -DENABLE_OPENSSL=OFF -DENABLE_MBEDTLS=OFF -DENABLE_NETTLE=OFF -DENABLE_CNG=OFF \
  -DENABLE_LIBB2=OFF -DENABLE_LZ4=OFF -DENABLE_LZO=OFF -DENABLE_LZMA=OFF -DENABLE_ZSTD=OFF -DENABLE_ZLIB=OFF \
  -DENABLE_BZip2=OFF -DENABLE_LIBXML2=OFF -DENABLE_EXPAT=OFF -DENABLE_PCREPOSIX=OFF -DENABLE_PCRE2POSIX=OFF \
  -DENABLE_LIBGCC=OFF -DENABLE_XATTR=OFF -DENABLE_ACL=OFF -DENABLE_ICONV=OFF -DENABLE_WERROR=OFF \
  -DHAVE_ARC4RANDOM_BUF=OFF  # glibc 2.36's; without it libarchive reads /dev/urandom, and older glibc does
# libarchive installs its shared library as well; the bundle keeps the archive.
rm -f "$P"/lib/libarchive.so* "$P"/lib/pkgconfig/libarchive.pc
component libarchive "$(src_version "$src")" BSD-2-Clause "built from source package libarchive (static; tar, no compression)" \
  "$src/debian/copyright"

src=$(source_dir opencv)
off=()
for w in TIFF WEBP OPENJPEG JASPER OPENEXR GDAL GDCM IPP ITT OPENCL TBB OPENMP EIGEN LAPACK PROTOBUF QUIRC ADE \
    GTK QT V4L FFMPEG GSTREAMER 1394 VA VA_INTEL CUDA OPENVX VTK CAROTENE VULKAN HALIDE IMGCODEC_HDR \
    IMGCODEC_SUNRASTER IMGCODEC_PXM IMGCODEC_PFM OPENCLAMDFFT OPENCLAMDBLAS; do
  off+=("-DWITH_$w=OFF")
done
cmake_install opencv "$src" -DBUILD_LIST=core,imgproc,imgcodecs "${off[@]}" \
  -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_DOCS=OFF -DBUILD_opencv_apps=OFF \
  -DBUILD_JAVA=OFF -DBUILD_opencv_python3=OFF -DBUILD_opencv_python2=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF \
  -DENABLE_PRECOMPILED_HEADERS=OFF -DCV_TRACE=OFF -DWITH_PTHREADS_PF=ON \
  -DWITH_JPEG=ON -DBUILD_JPEG=OFF -DJPEG_INCLUDE_DIR="$P/include" -DJPEG_LIBRARY="$P/lib/libjpeg.a" \
  -DWITH_PNG=ON -DBUILD_PNG=OFF -DPNG_PNG_INCLUDE_DIR="$P/include" -DPNG_LIBRARY="$P/lib/libpng16.a" \
  -DBUILD_ZLIB=OFF -DZLIB_INCLUDE_DIR="$P/include" -DZLIB_LIBRARY="$P/lib/libz.a" \
  -DOPENCV_LIB_INSTALL_PATH=lib -DOPENCV_3P_LIB_INSTALL_PATH=lib/opencv4/3rdparty \
  -DOPENCV_CONFIG_INSTALL_PATH=lib/cmake/opencv4 -DOPENCV_OTHER_INSTALL_PATH=share/opencv4 \
  -DINSTALL_PYTHON_EXAMPLES=OFF -DINSTALL_C_EXAMPLES=OFF -DOPENCV_SKIP_PYTHON_LOADER=ON
rm -rf "$P/share/opencv4" "$P/bin/setup_vars_opencv4.sh"
component opencv "$(src_version "$src")" Apache-2.0 \
  "built from source package opencv (static: core, imgproc, imgcodecs; JPEG and PNG)" "$src/debian/copyright"

# --- relocatable: no path of this build left in the CMake packages ----------
# OpenCV's exported targets name their codec libraries by absolute path.
grep -rl --include='*.cmake' "$P" "$P/lib/cmake" "$P/share/cmake" 2>/dev/null | while read -r f; do
  sed -i "s#$P/#\${_IMPORT_PREFIX}/#g" "$f"
done
if left=$(grep -rl --include='*.cmake' -e "$P" -e "$LIB" -e '/usr/include' "$P/lib/cmake" "$P/share/cmake"); then
  say "absolute paths left in: $left"
  grep -rn -e "$P" -e "$LIB" -e '/usr/include' $left | head >&2
  exit 1
fi
find "$P/lib" -name '*.a' -exec strip --strip-debug {} +

# --- what the target's C and C++ runtime must provide -----------------------
# For each symbol the archives leave undefined, the oldest version in which
# this system's libc (or libstdc++) has it; the bundle needs the newest of
# those. (A static archive carries no symbol versions: the target's linker
# binds each symbol to what its own libraries have.)
needs() {  # needs LIBRARY PREFIX -> e.g. GLIBC_2.33
  local lib=$1 prefix=$2
  objdump -T "$lib" | awk -v p="$prefix" '/\*UND\*/ { next } $0 ~ p { split($0, f, " "); v = f[length(f) - 1]; s = f[length(f)];
      sub(/^\(/, "", v); sub(/\)$/, "", v); if (v !~ "^" p) next;
      split(substr(v, length(p) + 1), n, "."); key = n[1] * 1000000 + n[2] * 1000 + n[3];
      if (!(s in best) || key < best[s]) { best[s] = key; name[s] = v } }
    END { for (s in best) print s, name[s], best[s] }' > "$WORK/build/versions-$prefix"
  find "$P/lib" -name '*.a' -exec nm -u --format=posix {} + 2>/dev/null | awk '{print $1}' | sort -u |
    awk 'NR == FNR { v[$1] = $2; k[$1] = $3; next } ($1 in v) && k[$1] > mk { mk = k[$1]; m = v[$1] } END { print m }' \
      "$WORK/build/versions-$prefix" -
}
GLIBC_NEEDS=$(needs "$(gcc -print-file-name=libc.so.6)" GLIBC_)
GLIBCXX_NEEDS=$(needs "$(g++ -print-file-name=libstdc++.so.6)" GLIBCXX_)

# --- manifest ---------------------------------------------------------------
{
  echo "Convoy dependency bundle"
  echo "made:       $(date -u +%Y-%m-%dT%H:%M:%SZ) on $PRETTY_NAME ($ARCH), $(g++ --version | head -n 1)"
  echo "target:     x86-64 Linux with glibc >= ${GLIBC_NEEDS#GLIBC_} and libstdc++ >= ${GLIBCXX_NEEDS} (what the"
  echo "            archives' undefined symbols need), a C++17 compiler, CMake >= 3.20; bin/protoc is static"
  echo "use:        cmake -DCONVOY_DEPS_BUNDLE=<this folder> ... (Convoy's CMakeLists.txt)"
  echo
  printf '%-14s %-22s %-32s %s\n' component version licence "what is in the bundle"
  printf '%s\n' "${MANIFEST_ROWS[@]}"
  echo
  echo "Licence texts: share/licenses/<component>/copyright (Debian's copyright files)."
} > "$P/MANIFEST"
cat "$P/MANIFEST" >&2
say "prefix done in $(($(date +%s) - t0)) s: $(du -sh "$P" | cut -f1)"
