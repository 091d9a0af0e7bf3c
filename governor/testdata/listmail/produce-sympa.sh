#!/bin/bash
# Captures what Sympa really sends for list administration and for a post,
# as fixtures for governor/listmail_test.go. Run as root on Debian bookworm
# after `apt-get install sympa` (6.2.70; SQLite through dbconfig-common).
# Sympa hands its mail to a sendmail-compatible program; here that is a
# small script that keeps each message instead of sending it, so nothing
# leaves the machine and no daemon listens on the network. The script sets
# domain, listmaster and sendmail in /etc/sympa/sympa/sympa.conf (the
# package's postinst needs a valid listmaster anyway) and drives Sympa by
# mail commands, injected with Sympa's own `queue` program as an MTA would.
# Writes sympa/*.eml and sympa/envelopes beside this script.
#
#   ./produce-sympa.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/listadmin-sympa.XXXXXX)
chmod 755 "$W"
mkdir "$W/out" && chown sympa:sympa "$W/out"
conf=/etc/sympa/sympa/sympa.conf
D=lists.example.org

# The sendmail stand-in: Sympa calls it as `sendmail -oi -odi -oem -f
# SENDER -- RCPT...` with the message on standard input.
cat >"$W/sendmail" <<SH
#!/bin/bash
out=$W/out
exec 9>>"\$out/lock"; flock 9
n=\$(( \$(cat "\$out/count" 2>/dev/null || echo 0) + 1 )); echo \$n >"\$out/count"
name=\$(printf '%03d.eml' \$n)
cat >"\$out/\$name"
from=; rcpts=()
while [ \$# -gt 0 ]; do
	case "\$1" in
	-f) from=\$2; shift 2 ;;
	--) shift; rcpts+=("\$@"); break ;;
	-*) shift ;;
	*) rcpts+=("\$1"); shift ;;
	esac
done
echo "\$name \${from:-<>} \${rcpts[*]}" >>"\$out/envelopes"
SH
chmod 755 "$W/sendmail"

setconf() { # key value
	if grep -q "^$1[[:space:]]" "$conf"; then
		sed -i "s|^$1[[:space:]].*|$1\t$2|" "$conf"
	else
		printf '%s\t%s\n' "$1" "$2" >>"$conf"
	fi
}
setconf domain $D
setconf listmaster listmaster@example.org
setconf wwsympa_url http://$D/wws
setconf sendmail "$W/sendmail"

as_sympa() { runuser -u sympa -- "$@"; }

# A discussion list whose (un)subscriptions are confirmed by mail.
cat >"$W/dev.xml" <<XML
<?xml version="1.0" ?>
<list>
  <listname>dev</listname>
  <type>discussion_list</type>
  <subject>Developers</subject>
  <status>open</status>
  <description>Fixture list</description>
  <topics>art</topics>
  <owner multiple="1"><email>owner@example.org</email></owner>
</list>
XML
if [ ! -d /var/lib/sympa/list_data/$D/dev ] && [ ! -d /var/lib/sympa/list_data/dev ]; then
	as_sympa /usr/lib/sympa/bin/sympa.pl --create_list --robot $D --input_file "$W/dev.xml"
fi
cfg=$(ls -d /var/lib/sympa/list_data/$D/dev/config /var/lib/sympa/list_data/dev/config 2>/dev/null || true)
sed -i 's/^subscribe .*/subscribe auth/; s/^unsubscribe .*/unsubscribe auth/' "$cfg"

# The daemons that read the incoming spool and send, in the foreground
# (they keep their pid files in /run/sympa, which systemd would make).
install -d -o sympa -g sympa /run/sympa
# Each runs in a session of its own, so that stopping it stops the perl
# process under runuser too.
setsid runuser -u sympa -- /usr/lib/sympa/bin/sympa_msg.pl --foreground >"$W/sympa_msg.log" 2>&1 &
msg=$!
setsid runuser -u sympa -- /usr/lib/sympa/bin/bulk.pl --foreground >"$W/bulk.log" 2>&1 &
bulk=$!
trap 'kill -- -$msg -$bulk 2>/dev/null || true' EXIT

# Hand a message to Sympa as the MTA's alias would: | queue RECIPIENT.
inject() { # to from subject body
	printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%s@example.com>\r\n\r\n%s\r\n' \
		"$2" "$1" "$3" "$(date -R)" "$(date +%s%N)" $RANDOM "$4" |
		as_sympa /usr/lib/sympa/bin/queue "$1"
}
count() { cat "$W/out/count" 2>/dev/null || echo 0; }
# Wait until a message captured after the n-th one matches the pattern.
wait_grep() { # n pattern
	for _ in $(seq 120); do
		for f in "$W"/out/*.eml; do
			[ -e "$f" ] || continue
			[ "$((10#$(basename "$f" .eml)))" -gt "$1" ] && grep -q "$2" "$f" && return
		done
		sleep 1
	done
	echo "timed out waiting for a message matching $2 after message $1" >&2; exit 1
}
# The mail command that confirms the newest request: its key and action
# are in the confirmation link, /wws/auth/KEY/ACTION.
auth() { # arguments of the command confirmed
	local key action
	read -r key action < <(grep -ho '/auth/[0-9a-f]*/[a-z_]*' "$W"/out/*.eml | tail -1 | tr / ' ' | awk '{print $2, $3}')
	echo "AUTH $key $action $*"
}

sleep 8 # notices the daemons send when they start
n=$(count); inject sympa@$D ann@example.com "subscribe dev Ann" ""
wait_grep $n '^Subject: .*subscribing to dev'                              # confirmation request
n=$(count); inject sympa@$D ann@example.com "$(auth dev Ann)" ""
wait_grep $n '^Subject: Welcome'                                           # welcome
n=$(count); inject dev@$D ann@example.com "Release notes" "The new release is out."
wait_grep $n '^Subject: .*Release notes'                                   # the post
n=$(count); inject sympa@$D owner@example.org "remind dev" ""
wait_grep $n '/auth/'                                                      # confirmation request to the owner
n=$(count); inject sympa@$D owner@example.org "$(auth dev)" ""
wait_grep $n '^To: .*ann@example.com'                                      # subscription reminder
n=$(count); inject sympa@$D ann@example.com "unsubscribe dev" ""
wait_grep $n '^Subject: .*unsubscribing from dev'                          # confirmation request
n=$(count); inject sympa@$D ann@example.com "$(auth dev)" ""
wait_grep $n '^To: .*ann@example.com'                                      # goodbye
sleep 8 # the command reports
# A digest: bob subscribes, switches to digest mode and posts; the digest
# is sent at once instead of at the list's digest hour.
n=$(count); inject sympa@$D bob@example.com "subscribe dev Bob" ""
wait_grep $n '^Subject: .*subscribing to dev'                              # confirmation request
n=$(count); inject sympa@$D bob@example.com "$(auth dev Bob)" ""
wait_grep $n '^Subject: Welcome'                                           # welcome
sleep 5; n=$(count); inject sympa@$D bob@example.com "set dev digest" ""
wait_grep $n '^Subject: Results of your commands'                          # command report
sleep 5; n=$(count); inject dev@$D bob@example.com "Build failure" "The nightly build fails."
sleep 15 # bob alone, in digest mode: the post goes to the digest only
as_sympa /usr/lib/sympa/bin/sympa.pl --send_digest
wait_grep $n '^Subject: .*Digest'                                          # the digest
sleep 8

mkdir -p "$here/sympa"
rm -f "$here"/sympa/*.eml "$here/sympa/envelopes"
cp "$W"/out/*.eml "$W/out/envelopes" "$here/sympa/"
echo "captured $(count) messages into $here/sympa (work dir $W)"
