#!/usr/bin/env bash
# postfix-peer.sh start|stop DIR [PORT RELAYHOST] — a throwaway private Postfix instance as a test/benchmark peer.
#
# start DIR PORT RELAYHOST: builds DIR/etc (main.cf + a copy of the system master.cf), DIR/queue and DIR/data,
#        starts `postfix -c DIR/etc start-fg` in the background (its maillog goes to DIR/maillog, its pid to DIR/pid)
#        and returns once smtpd accepts connections on 127.0.0.1:PORT. It relays every message to RELAYHOST
#        (e.g. "[127.0.0.1]:2526"). Extra main.cf lines may be given in $POSTFIX_PEER_EXTRA_MAIN_CF.
#        With $POSTFIX_PEER_NAMESERVER set to an IP address, smtpd runs chrooted in DIR/queue with a resolv.conf
#        naming that server (port 53) and an empty hosts file: Postfix resolves through the system resolver,
#        and this gives it a private one without touching /etc.
# stop DIR: stops that instance and waits until its master has exited. Stopping a stopped instance is fine.
#
# Both internal/peers (Go tests) and scripts/bench.sh use this script, so the Postfix set-up lives only here.
# Everything not needed to make a private instance work stays at Postfix's defaults: the benchmark compares
# sqlmta against Postfix as shipped, not against a tuned Postfix.
set -euo pipefail

die() { echo "postfix-peer.sh: $*" >&2; exit 1; }

# port_open succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# master_alive succeeds while the start-fg process recorded in DIR/pid runs.
master_alive() { [ -s "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

start() {
	local dir="$1" port="$2" relayhost="$3"
	[ "$(id -u)" -eq 0 ] || die "a private Postfix instance must be started as root"
	command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || die "postfix is not installed"
	export PATH="$PATH:/usr/sbin"
	if port_open "$port"; then die "127.0.0.1:$port is already in use"; fi

	mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
	dir="$(cd "$dir" && pwd)"
	# Postfix refuses a queue or data directory that its mail_owner cannot reach.
	chmod 755 "$dir" "$dir/etc"
	chown root: "$dir/queue" && chmod 755 "$dir/queue"
	chown postfix: "$dir/data" && chmod 700 "$dir/data"
	# master opens its lock file in data_directory as mail_owner, so every parent must be searchable by it.
	runuser -u postfix -- test -x "$dir/data" || die "$dir is not reachable by user postfix (a parent is not mode 755?)"

	# Each parameter once: every Postfix process warns about a parameter given twice, and a burst of such
	# warnings at start fills the postlog socket (net.unix.max_dgram_qlen is 10 on some machines), where
	# postlogd, writing its own copy of the warnings, then blocks for ever and with it every daemon that logs.
	local extra="${POSTFIX_PEER_EXTRA_MAIN_CF:-}" overridden
	overridden="$(printf '%s\n' "$extra" | sed -n 's/^[[:space:]]*\([A-Za-z0-9_]*\)[[:space:]]*=.*/\1/p' | sort -u | paste -sd'|')"
	cat >"$dir/etc/main.cf.base" <<-EOF
		# Private Postfix peer written by scripts/postfix-peer.sh; defaults everywhere else.
		compatibility_level = 3.6
		myhostname = postfix-peer.localdomain
		mydestination =
		relayhost = $relayhost
		mynetworks = 127.0.0.0/8
		inet_interfaces = loopback-only
		queue_directory = $dir/queue
		data_directory = $dir/data
		# No syslog here; start-fg plus /dev/stdout puts the log in DIR/maillog.
		maillog_file = /dev/stdout
		# No local delivery happens, so skip the system alias database (which may not exist).
		alias_maps =
		alias_database =
	EOF
	if [ -n "$overridden" ]; then
		grep -Ev "^($overridden)[[:space:]]*=" "$dir/etc/main.cf.base" >"$dir/etc/main.cf"
	else
		cp "$dir/etc/main.cf.base" "$dir/etc/main.cf"
	fi
	rm -f "$dir/etc/main.cf.base"
	printf '%s\n' "$extra" >>"$dir/etc/main.cf"

	# The system master.cf with smtpd moved to our port. Debian's copy runs services chrooted in the queue
	# directory, which needs /etc files copied in; a throwaway instance runs them unchrooted instead.
	# The chroot is set here, before the first smtpd starts: set by a reload, the smtpd that the readiness
	# probe below started would live on unchrooted for a while and answer with the system's resolver.
	local chroot=n ns="${POSTFIX_PEER_NAMESERVER:-}"
	if [ -n "$ns" ]; then
		chroot=y
		mkdir -p "$dir/queue/etc"
		printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$ns" >"$dir/queue/etc/resolv.conf"
		: >"$dir/queue/etc/hosts"
		echo 'hosts: files dns' >"$dir/queue/etc/nsswitch.conf"
		if [ -f /etc/localtime ]; then cp /etc/localtime "$dir/queue/etc/localtime"; fi
	fi
	awk -v listen="127.0.0.1:$port" -v chroot="$chroot" '
		/^[#[:space:]]/ || NF < 8 { print; next }
		$1 == "smtp" && $2 == "inet" { print listen "\tinet\tn\t-\t" chroot "\t-\t-\tsmtpd"; next }
		$2 == "inet" { print "#" $0; next }   # no other listeners (submission etc.) on shared ports
		{ $5 = "n"; print }
	' /etc/postfix/master.cf >"$dir/etc/master.cf"

	# Ready means smtpd answers through RCPT, which needs trivial-rewrite: once (on a loaded CI machine) the
	# port opened but the master spawned nothing more and every RCPT hung. Such an instance is killed and
	# started once more.
	local try i
	for try in 1 2; do
		# setsid: the instance outlives this script and must not share the caller's terminal signals.
		setsid postfix -c "$dir/etc" start-fg </dev/null >>"$dir/maillog" 2>&1 &
		echo $! >"$dir/pid"
		for i in $(seq 1 300); do
			if port_open "$port"; then break; fi
			master_alive "$dir" || die "postfix exited during start: $(tail -n 20 "$dir/maillog")"
			sleep 0.1
		done
		if smtp_answers "$port"; then return 0; fi
		echo "postfix-peer.sh: postfix in $dir not ready (try $try): $(tail -n 5 "$dir/maillog")" >&2
		kill_instance "$dir"
		rm -f "$dir/queue/pid/master.pid"
	done
	die "postfix in $dir did not become ready"
}

# smtp_answers succeeds when smtpd on 127.0.0.1:$1 answers HELO, MAIL and RCPT within 20 s each. Any reply
# will do (the extra main.cf may reject), and so does a close after a reply.
smtp_answers() {
	local line cmd
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	read -r -t 20 line <&3 || { exec 3<&-; return 1; }
	for cmd in "HELO peer-probe.localdomain" "MAIL FROM:<>" "RCPT TO:<postmaster>"; do
		printf '%s\r\n' "$cmd" >&3 2>/dev/null || break
		if ! read -r -t 20 line <&3; then
			# EOF (status 1) is an answer; a timeout (status > 128) is not.
			[ $? -gt 128 ] && { exec 3<&-; return 1; }
			break
		fi
	done
	printf 'QUIT\r\n' >&3 2>/dev/null || true
	exec 3<&-
	return 0
}

# kill_instance kills every process of the instance: start-fg's session and the master's own session (the
# master calls setsid), with whatever children they have.
kill_instance() {
	local dir="$1" pid sid
	for pid in "$(cat "$dir/pid" 2>/dev/null)" "$(tr -d ' ' <"$dir/queue/pid/master.pid" 2>/dev/null)"; do
		[ -n "$pid" ] || continue
		# Only a live Postfix process of this instance: a stale pid may name anything by now.
		[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir/queue" ] || [ "$pid" = "$(cat "$dir/pid" 2>/dev/null)" ] || continue
		sid="$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')"
		if [ -n "$sid" ] && [ "$sid" != "0" ]; then pkill -KILL -s "$sid" 2>/dev/null || true; fi
		kill -KILL "$pid" 2>/dev/null || true
	done
}

stop() {
	local dir="$1"
	[ -d "$dir/etc" ] || return 0
	export PATH="$PATH:/usr/sbin"
	# postfix stop can block for ever: under a log flood postlogd deadlocks writing its own warnings to its full
	# socket, and every Postfix command that logs (master -t included) then waits on that socket.
	timeout 15 postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
	local i
	for i in $(seq 1 150); do
		master_alive "$dir" || return 0
		sleep 0.1
	done
	kill_instance "$dir"
	echo "postfix-peer.sh: postfix in $dir did not stop within 30 s; killed" >&2
}

case "${1:-}" in
start) [ $# -eq 4 ] || die "usage: $0 start DIR PORT RELAYHOST"; start "$2" "$3" "$4" ;;
stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
*) die "usage: $0 start DIR PORT RELAYHOST | stop DIR" ;;
esac
