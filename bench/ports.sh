# Sourced by the bench scripts: loopback ports.

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port port seconds: returns once something listens on 127.0.0.1:port,
# fails after seconds.
wait_port() {
	local deadline=$((SECONDS + $2))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || { echo "$(basename "$0"): nothing listens on 127.0.0.1:$1 after $2s" >&2; return 1; }
		sleep 0.05
	done
}
