# shellcheck shell=bash
# free_port: a 127.0.0.1 port nobody listens on now, chosen outside the
# kernel's ephemeral range, so no outgoing connection (to PostgreSQL, Redis,
# anything) can be holding it as its local port when the server binds it.
# Another process can still take it first; the callers say so when it does.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local low=32768 high=60999 from to port
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r low high </proc/sys/net/ipv4/ip_local_port_range
  fi
  if ((low > 12000)); then
    from=10000 to=$((low - 1))
  elif ((high < 63000)); then
    from=$((high + 1)) to=65535
  else
    from=10000 to=65535
  fi
  for _ in $(seq 1 100); do
    port=$((from + (RANDOM * 32768 + RANDOM) % (to - from + 1)))
    port_open "$port" || { echo "$port"; return 0; }
  done
  echo "no free port found in $from-$to" >&2
  return 1
}
