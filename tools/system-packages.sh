#!/usr/bin/env bash
# Debian packages the reading station needs, installed only when missing (root or sudo needed then):
#   egl       Mesa's EGL: VTK renders the Slicer views offscreen, without an X server
#   chromium  Debian's Chromium: the browser tests drive it headless with playwright
set -euo pipefail
packages=()
for need in "$@"; do
  case "$need" in
    egl) ldconfig -p | grep -q 'libEGL_mesa.so.0' || packages+=(libegl1 libegl-mesa0 libgl1-mesa-dri) ;;
    chromium) command -v chromium >/dev/null || packages+=(chromium) ;;
    *) echo "unknown system need: $need" >&2; exit 2 ;;
  esac
done
[ ${#packages[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing Debian packages: ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
