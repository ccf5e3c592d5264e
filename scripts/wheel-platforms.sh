# Sourced by sandbox-image/build.sh and deploy/build-server.sh: the pip --platform
# arguments for wheels that run on a base with this machine and glibc version.
#   manylinux_platform_args MACHINE GLIBC_VERSION   -> sets the array platform_args
manylinux_platform_args() {
    local machine="$1" glibc="$2" minor
    platform_args=(--platform "manylinux2014_$machine")
    minor="${glibc#2.}"
    minor="${minor%%.*}"
    [[ "$minor" =~ ^[0-9]+$ ]] || minor=28
    local m
    for ((m = 17; m <= minor; m++)); do
        platform_args+=(--platform "manylinux_2_${m}_${machine}")
    done
}
