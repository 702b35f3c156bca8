#!/bin/bash
# Installs sqlmta: mtad, mtactl with its Postfix-named links, and the set-gid
# postdrop helper; creates the postdrop group and queue_directory's maildrop.
# Run as root. PREFIX (default /usr/local) and DESTDIR may be set;
# CONFIG_DIR (default /etc/sqlmta) gets a main.cf only when it has none.
set -euo pipefail
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
CONFIG_DIR=${CONFIG_DIR:-/etc/sqlmta}
GO=${GO:-go}
SBIN=$DESTDIR$PREFIX/sbin
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "install.sh: must run as root (it sets a set-gid bit and creates a group)" >&2
	exit 1
fi
getent group postdrop >/dev/null || groupadd --system postdrop

mkdir -p "$SBIN"
for b in mtad mtactl postdrop; do
	$GO build -trimpath -o "$SBIN/$b.new" "./cmd/$b"
	mv -f "$SBIN/$b.new" "$SBIN/$b"
done
chown root:root "$SBIN/mtad" "$SBIN/mtactl"
chmod 0755 "$SBIN/mtad" "$SBIN/mtactl"
# Only postdrop is privileged: group postdrop, set-gid, so that it alone can
# write into the maildrop (mode 1730 root:postdrop).
chown root:postdrop "$SBIN/postdrop"
chmod 2755 "$SBIN/postdrop"
for l in sendmail mailq newaliases postmap postconf postqueue postsuper postcat postfix; do
	ln -sfn mtactl "$SBIN/$l"
done

mkdir -p "$DESTDIR$CONFIG_DIR"
if [ ! -e "$DESTDIR$CONFIG_DIR/main.cf" ]; then
	printf '# sqlmta main.cf: Postfix syntax; see `mtactl conf -d` for every parameter.\n' >"$DESTDIR$CONFIG_DIR/main.cf"
	chmod 0644 "$DESTDIR$CONFIG_DIR/main.cf"
fi

# queue_directory and its maildrop, as mtad would create them at start.
QDIR=$(MAIL_CONFIG="$DESTDIR$CONFIG_DIR" "$SBIN/mtactl" conf -h -x queue_directory)
mkdir -p "$DESTDIR$QDIR/maildrop" "$DESTDIR$QDIR/public"
chmod 0755 "$DESTDIR$QDIR"
chown root:postdrop "$DESTDIR$QDIR/maildrop" "$DESTDIR$QDIR/public"
chmod 1730 "$DESTDIR$QDIR/maildrop"
chmod 0710 "$DESTDIR$QDIR/public"

if [ -d "$DESTDIR/etc/systemd/system" ]; then
	sed "s|/usr/local/sbin|$PREFIX/sbin|g; s|MAIL_CONFIG=/etc/sqlmta|MAIL_CONFIG=$CONFIG_DIR|" etc/systemd/sqlmta.service \
		>"$DESTDIR/etc/systemd/system/sqlmta.service"
fi
echo "installed into $SBIN; configuration in $CONFIG_DIR; start with: systemctl enable --now sqlmta (or: postfix start)"
