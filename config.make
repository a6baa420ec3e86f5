# Sourced by nginx's auto/make after the module rules are written: adds C++17 rules for the
# module's sources and the static archive that config puts on the link line.
#
# The C++ compiler follows nginx's C compiler (gcc/cc -> g++, clang -> clang++), or is taken from
# NGX_SESSION_CXX. Flags are nginx's CFLAGS (its -Werror included) minus the C-only ones, plus
# -std=c++17 -fPIC -fvisibility=hidden; nginx's default "-O" becomes -O2 for the C++ code (the
# JSON parser and the envelope code are on every request), an explicit -O<n> is kept.

if [ -n "$NGX_SESSION_CXX" ]; then
    ngx_session_cxx="$NGX_SESSION_CXX"
else
    case "$CC" in
        *clang*) ngx_session_cxx=`echo "$CC" | sed -e 's/clang/clang++/'` ;;
        *gcc*)   ngx_session_cxx=`echo "$CC" | sed -e 's/gcc/g++/'` ;;
        *)       ngx_session_cxx=c++ ;;
    esac
fi

ngx_session_dir=$NGX_OBJS/addon/session
mkdir -p "$ngx_session_dir"

ngx_session_hdrs=`ls "$ngx_addon_dir"/src/*.h "$ngx_addon_dir"/src/core/*.h "$ngx_addon_dir"/src/redis/*.h 2>/dev/null | tr '\n' ' '`

cat << END                                                        >> $NGX_MAKEFILE

NGX_SESSION_CXX = $ngx_session_cxx
NGX_SESSION_CXXFLAGS = \$(patsubst -O,-O2,\$(filter-out -std=% -Wmissing-prototypes \
	-Wstrict-prototypes -Wold-style-definition -Wdeclaration-after-statement \
	-Wbad-function-cast -Wnested-externs -Wno-pointer-sign -Wpointer-sign, \$(CFLAGS))) \
	-std=c++17 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden $NGX_SESSION_CXXFLAGS
NGX_SESSION_HDRS = $ngx_session_hdrs

END

# Objects also depend on the generated Makefile: a new configure (other flags) rebuilds them.
ngx_session_objs=
for ngx_session_src in $NGX_SESSION_CORE_SRCS $NGX_SESSION_GLUE_SRCS
do
    ngx_session_obj=$ngx_session_dir/`echo $ngx_session_src | sed -e 's#/#_#g' -e 's#\.cpp$#.o#'`
    ngx_session_objs="$ngx_session_objs $ngx_session_obj"
    case "$ngx_session_src" in
        src/core/*)
            # The core has no nginx headers.
            ngx_session_incs=
            ngx_session_deps=
            ;;
        *)
            ngx_session_incs='$(CORE_INCS) $(HTTP_INCS)'
            ngx_session_deps='$(CORE_DEPS) $(HTTP_DEPS)'
            ;;
    esac
    cat << END                                                    >> $NGX_MAKEFILE
$ngx_session_obj:	$ngx_addon_dir/$ngx_session_src \$(NGX_SESSION_HDRS) $ngx_session_deps $NGX_MAKEFILE
	\$(NGX_SESSION_CXX) -c \$(NGX_SESSION_CXXFLAGS) $ngx_session_incs -o $ngx_session_obj $ngx_addon_dir/$ngx_session_src

END
done

cat << END                                                        >> $NGX_MAKEFILE
$NGX_SESSION_LIB:	$ngx_session_objs
	rm -f $NGX_SESSION_LIB
	ar rcs $NGX_SESSION_LIB $ngx_session_objs

END
