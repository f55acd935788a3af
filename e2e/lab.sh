#!/usr/bin/env bash
# End-to-end test of the one-node lab, as a user would drive it: scripts/up.sh, real kubectl 1.32 with default
# flags and an empty cache, curl from the host, scripts/down.sh, and a check that nothing is left behind.
#
# Prints one line per check and ends with "N passed, N failed"; exits non-zero if any check failed.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1

passed=0
failed=0
work=$(mktemp -d /tmp/skiff-e2e.XXXXXX)
cache="$work/kube-cache"

pass() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
# verdict NAME DETAIL CMD...: pass if the command succeeds, fail with DETAIL otherwise.
verdict() {
    local name=$1 detail=$2; shift 2
    if "$@"; then pass "$name"; else fail "$name" "$detail"; fi
}
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; [[ $# -gt 1 ]] && printf '     %s\n' "${@:2}"; }

# check NAME CMD... : the command must succeed.
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "command: $*" "${out:0:2000}"; fi
}

# contains NAME HAYSTACK NEEDLE
contains() {
    if grep -qF -- "$3" <<<"$2"; then pass "$1"; else fail "$1" "expected to find: $3" "in: ${2:0:3000}"; fi
}

k() { kubectl --cache-dir "$cache" "$@"; }

finish() {
    echo
    echo "$passed passed, $failed failed"
    rm -rf "$work"
    [[ $failed -eq 0 ]]
}

dump_logs() {
    local state=${SKIFF_STATE:-/var/lib/skiff}
    for f in "$state"/logs/*.log; do
        [[ -f $f ]] || continue
        echo "---- last lines of $f"
        tail -n 40 "$f"
    done
}

# The agent's cluster DNS forwards names outside cluster.local to the nameservers of its --resolv-conf. This
# test asks for cluster names only, but a resolver walking a search path could still send one out: the agent
# gets a resolv.conf without nameservers, so no query leaves the machine (such names get SERVFAIL).
printf '# e2e/lab.sh: no upstream nameservers\n' >"$work/resolv.conf"
export SKIFF_RESOLV_CONF=$work/resolv.conf

# ---------------------------------------------------------------------------------------------------------------
if ! left=$("$repo/scripts/down.sh" --check 2>&1); then
    echo "== leftovers of an earlier cluster (an interrupted run)"
    while IFS= read -r line; do printf '     %s\n' "$line"; done <<<"$left"
    check "down.sh removes them" "$repo/scripts/down.sh"
fi

echo "== up.sh"
if ! "$repo/scripts/up.sh" >"$work/up1.out" 2>&1; then
    fail "up.sh brings the cluster up" "$(tail -n 30 "$work/up1.out")"
    dump_logs
    "$repo/scripts/down.sh" >/dev/null 2>&1
    finish; exit 1
fi
last1=$(tail -n 1 "$work/up1.out")
if [[ $last1 =~ ^export\ KUBECONFIG=/[^[:space:]]+$ ]]; then pass "up.sh ends with export KUBECONFIG=<absolute path>"
else fail "up.sh ends with export KUBECONFIG=<absolute path>" "last line: $last1"; fi
eval "$last1"

state=${SKIFF_STATE:-/var/lib/skiff}
pids_before=$(cat "$state"/pids/*.pid 2>/dev/null | sort | tr '\n' ' ')
"$repo/scripts/up.sh" >"$work/up2.out" 2>&1
last2=$(tail -n 1 "$work/up2.out")
if [[ $last2 == "$last1" ]]; then pass "second up.sh prints the same last line"; else fail "second up.sh prints the same last line" "$last2"; fi
pids_after=$(cat "$state"/pids/*.pid 2>/dev/null | sort | tr '\n' ' ')
if [[ -n $pids_before && $pids_before == "$pids_after" ]]; then pass "second up.sh restarts nothing"
else fail "second up.sh restarts nothing" "before: $pids_before" "after: $pids_after"; fi

# ---------------------------------------------------------------------------------------------------------------
echo "== the nginx example pod"
node=$(hostname | tr '[:upper:]' '[:lower:]')
out=$(k get nodes 2>&1)
contains "kubectl get nodes shows this host" "$out" "$node"
if awk -v n="$node" '$1 == n && $2 == "Ready" { found = 1 } END { exit !found }' <<<"$out"; then pass "node is Ready"
else fail "node is Ready" "$out"; fi

out=$(k create -f examples/pod.yml 2>&1)
contains "kubectl create -f examples/pod.yml" "$out" "pod/example-pod created"
out=$(k create -f examples/pod.yml 2>&1)
contains "a second create is refused with AlreadyExists" "$out" "AlreadyExists"

check "kubectl wait --for=condition=Ready pod/example-pod" k wait --for=condition=Ready pod/example-pod --timeout=120s

out=$(k get pods -o wide 2>&1)
row=$(grep '^example-pod ' <<<"$out")
ip=$(k get pod example-pod -o 'jsonpath={.status.podIP}' 2>/dev/null)
if [[ $row == *Running* && -n $ip && $row == *"$ip"* && $row == *"$node"* ]]; then
    pass "get pods -o wide: Running with IP and NODE"
else
    fail "get pods -o wide: Running with IP and NODE" "$out"
fi
contains "get pods -o wide has the wide columns" "$out" "NOMINATED NODE"

body=$(curl -sS --max-time 10 "http://$ip/" 2>&1)
contains "curl http://<pod IP>/ answers with the nginx welcome page" "$body" "Welcome to nginx!"

out=$(k explain pods.spec.containers.livenessProbe 2>&1)
contains "kubectl explain pods.spec.containers.livenessProbe" "$out" "Periodic probe of container liveness"
out=$(k explain deployment.spec.strategy.rollingUpdate 2>&1)
contains "kubectl explain deployment.spec.strategy.rollingUpdate" "$out" "maxSurge"

out=$(k describe pod example-pod 2>&1)
for reason in Scheduled Pulling Pulled Created Started; do
    contains "describe pod shows event $reason" "$out" "$reason"
done

status=$(k get pod example-pod -o json 2>&1)
for field in '"type": "PodScheduled"' '"type": "PodReadyToStartContainers"' '"type": "Initialized"' \
             '"type": "ContainersReady"' '"type": "Ready"' '"hostIP"' '"startTime"' '"podIPs"' \
             '"containerID": "containerd://' '"imageID": "docker.io/library/nginx@sha256:' '"restartCount": 0' \
             '"started": true' '"phase": "Running"'; do
    contains "pod status has $field" "$status" "$field"
done

uid=$(k get pod example-pod -o 'jsonpath={.metadata.uid}' 2>/dev/null)
logfile="/var/log/pods/default_example-pod_${uid}/nginx/0.log"
if [[ -f $logfile ]] && grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z stdout F .*"GET / HTTP/1.1" 200' "$logfile"; then
    pass "nginx access log is in $logfile in CRI format"
else
    fail "nginx access log is in the CRI log file" "$logfile: $(tail -n 5 "$logfile" 2>&1)"
fi

links=(/var/log/containers/example-pod_default_nginx-*.log)
verdict "the /var/log/containers symlink points at the CRI log" "${links[*]}" test "$(readlink "${links[0]}")" = "$logfile"

ipam_file="/var/lib/cni/networks/skiff/$ip"
verdict "the pod IP is reserved in IPAM" "$ipam_file missing" test -f "$ipam_file"

out=$(timeout 120 kubectl --cache-dir "$cache" delete pod example-pod 2>&1)
contains "kubectl delete pod example-pod returns" "$out" 'pod "example-pod" deleted'
out=$(k get pod example-pod 2>&1)
contains "the pod is gone from the API" "$out" "NotFound"
sock=/run/skiff/containerd/containerd.sock
left=$(ctr --address "$sock" -n skiff containers ls -q 2>&1 | grep -c "^$uid" || true)
verdict "no containers of the deleted pod in containerd" "$left left" test "$left" -eq 0
verdict "the pod IP is released" "$ipam_file still there" test ! -e "$ipam_file"
verdict "the pod's pinned namespaces are gone" "$(ls -R "/run/skiff/pods/$uid" 2>&1)" test ! -e "/run/skiff/pods/$uid"

# ---------------------------------------------------------------------------------------------------------------
echo "== init container writes into an emptyDir, the app container serves it"
check "kubectl create -f examples/init-emptydir.yml" k create -f examples/init-emptydir.yml
check "init pod becomes Ready" k wait --for=condition=Ready pod/init-demo --timeout=120s
ip=$(k get pod init-demo -o 'jsonpath={.status.podIP}' 2>/dev/null)
body=$(curl -sS --max-time 10 "http://$ip/" 2>&1)
contains "the app serves the file the init container wrote" "$body" "written by the init container"
out=$(k get pod init-demo -o 'jsonpath={.status.initContainerStatuses[0].state.terminated.reason}' 2>&1)
contains "the init container terminated with reason Completed" "$out" "Completed"
check "kubectl delete pod init-demo" timeout 120 kubectl --cache-dir "$cache" delete pod init-demo

# ---------------------------------------------------------------------------------------------------------------
echo "== a Service in front of two nginx pods"
# poll SECONDS CMD...: retry the command every 0.2 s until it succeeds.
poll() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
out=$(k get service kubernetes 2>&1)
contains "the kubernetes Service exists with the first service IP" "$out" "10.96.0.1"
check "kubectl run web-1" k run web-1 --image=nginx --labels=app=web
check "kubectl run web-2" k run web-2 --image=nginx --labels=app=web
out=$(k create service clusterip web --tcp=80:80 2>&1)
contains "kubectl create service clusterip web" "$out" "service/web created"
check "both web pods become Ready" k wait --for=condition=Ready pod/web-1 pod/web-2 --timeout=120s
cip=$(k get service web -o 'jsonpath={.spec.clusterIP}' 2>/dev/null)
ip1=$(k get pod web-1 -o 'jsonpath={.status.podIP}' 2>/dev/null)
ip2=$(k get pod web-2 -o 'jsonpath={.status.podIP}' 2>/dev/null)
both_endpoints() {
    local eps
    eps=$(k get endpoints web -o 'jsonpath={.subsets[*].addresses[*].ip}')
    [[ " $eps " == *" $ip1 "* && " $eps " == *" $ip2 "* ]]
}
verdict "the Endpoints of web list both pod IPs" "$(k get endpoints web -o yaml 2>&1)" poll 20 both_endpoints
verdict "curl http://<cluster IP>/ from the host reaches nginx" "$(curl -sS --max-time 5 "http://$cip/" 2>&1)" \
    poll 20 sh -c "curl -sS --max-time 5 http://$cip/ | grep -q 'Welcome to nginx!'"
for _ in $(seq 1 30); do curl -s --max-time 5 -o /dev/null "http://$cip/"; done
for pod in web-1 web-2; do
    out=$(k logs "$pod" 2>&1)
    contains "connections to the cluster IP reach $pod" "$out" '"GET / HTTP/1.1" 200'
done
# A NodePort Service: every local address but 127.0.0.0/8 serves the node port; the lab's API address on lo
# (169.254.64.1) is one of them, and traffic to it never leaves the machine.
out=$(printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: web-np}' \
    'spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, nodePort: 30080}]}' | k create -f - 2>&1)
contains "a NodePort Service asking for node port 30080" "$out" "service/web-np created"
out=$(k get service web-np 2>&1)
contains "kubectl get service shows the node port" "$out" "80:30080/TCP"
verdict "curl http://169.254.64.1:30080/ (a node address, the node port) reaches nginx" \
    "$(curl -sS --max-time 5 http://169.254.64.1:30080/ 2>&1)" \
    poll 20 sh -c "curl -sS --max-time 5 http://169.254.64.1:30080/ | grep -q 'Welcome to nginx!'"
check "kubectl delete service web-np" k delete service web-np
refused_np() { curl -sS --max-time 5 -o /dev/null http://169.254.64.1:30080/; [[ $? -eq 7 ]]; }
verdict "the node port is closed once the Service is gone" "$(curl -sS --max-time 5 http://169.254.64.1:30080/ 2>&1)" \
    poll 20 refused_np
# ServiceLB (k3s): a LoadBalancer Service gets the node's address as its external IP, and every local address
# but 127.0.0.0/8 serves its port; a second one on the same port stays <pending> (PortConflict).
node_ip=$(k get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}' 2>&1)
out=$(printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: web-lb}' \
    'spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 8080, targetPort: 80}]}' | k create -f - 2>&1)
contains "a LoadBalancer Service on port 8080" "$out" "service/web-lb created"
lb_ip() { k get service "$1" -o jsonpath='{.status.loadBalancer.ingress[*].ip}'; }
lb_is_node() { [[ -n $node_ip && "$(lb_ip web-lb)" == "$node_ip" ]]; }
poll 20 lb_is_node
verdict "the LoadBalancer's ingress is the node's address ($node_ip)" "$(lb_ip web-lb 2>&1)" lb_is_node
out=$(k get service web-lb 2>&1)
contains "kubectl get service shows it as EXTERNAL-IP" "$out" "$node_ip"
verdict "curl http://169.254.64.1:8080/ (a node address, the load balancer port) reaches nginx" \
    "$(curl -sS --max-time 5 http://169.254.64.1:8080/ 2>&1)" \
    poll 20 sh -c "curl -sS --max-time 5 http://169.254.64.1:8080/ | grep -q 'Welcome to nginx!'"
out=$(printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: web-lb2}' \
    'spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 8080, targetPort: 80}]}' | k create -f - 2>&1)
contains "a second LoadBalancer Service on the same port" "$out" "service/web-lb2 created"
lb_conflict() { k describe service web-lb2 2>&1 | grep -q "PortConflict"; }
verdict "it reports PortConflict (port 8080/TCP is in use by default/web-lb)" \
    "$(k describe service web-lb2 2>&1 | grep -i conflict)" poll 20 lb_conflict
out=$(k get service web-lb2 2>&1)
contains "and stays <pending>" "$out" "<pending>"
check "kubectl delete service web-lb web-lb2" k delete service web-lb web-lb2
refused_lb() { curl -sS --max-time 5 -o /dev/null http://169.254.64.1:8080/; [[ $? -eq 7 ]]; }
verdict "the load balancer port is closed once the Services are gone" \
    "$(curl -sS --max-time 5 http://169.254.64.1:8080/ 2>&1)" poll 20 refused_lb
# Session affinity: with sessionAffinity ClientIP every connection of one client reaches the same pod.
out=$(printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: web-sticky}' \
    'spec: {selector: {app: web}, sessionAffinity: ClientIP, ports: [{port: 80}]}' | k create -f - 2>&1)
contains "a Service with sessionAffinity ClientIP" "$out" "service/web-sticky created"
out=$(k get service web-sticky -o 'jsonpath={.spec.sessionAffinityConfig.clientIP.timeoutSeconds}' 2>&1)
contains "its timeout defaults to 10800 s" "$out" "10800"
sip=$(k get service web-sticky -o 'jsonpath={.spec.clusterIP}' 2>/dev/null)
verdict "curl http://<its cluster IP>/ reaches nginx" "$(curl -sS --max-time 5 "http://$sip/" 2>&1)" \
    poll 20 sh -c "curl -sS --max-time 5 http://$sip/ | grep -q 'Welcome to nginx!'"
for _ in $(seq 1 20); do curl -s --max-time 5 -o /dev/null "http://$sip/?sticky"; done
n1=$(k logs web-1 2>/dev/null | grep -c 'GET /?sticky ')
n2=$(k logs web-2 2>/dev/null | grep -c 'GET /?sticky ')
verdict "20 connections from the host all reach one pod" "web-1: $n1, web-2: $n2" \
    sh -c "[ '$n1 $n2' = '20 0' ] || [ '$n1 $n2' = '0 20' ]"
check "kubectl delete service web-sticky" k delete service web-sticky
# shellcheck disable=SC2016 # expanded inside the pod
check "kubectl run client (busybox, wget through the service variables)" k run client --image=busybox:1.35 \
    --restart=Never --command -- sh -c 'echo "host=$WEB_SERVICE_HOST port=$WEB_SERVICE_PORT"; wget -qO- "http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/"'
check "the client pod succeeds" k wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=120s
out=$(k logs client 2>&1)
contains "the client pod has WEB_SERVICE_HOST and WEB_SERVICE_PORT" "$out" "host=$cip port=80"
contains "a pod reaches nginx through the cluster IP" "$out" "Welcome to nginx!"

echo "== cluster DNS (served by the agent on 10.96.0.10)"
out=$(k get service -n kube-system kube-dns -o 'jsonpath={.spec.clusterIP} {.spec.ports[*].name}' 2>&1)
contains "the kube-dns Service holds the cluster DNS address" "$out" "10.96.0.10 dns dns-tcp"
out=$(printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: web-headless}' \
    'spec: {clusterIP: None, selector: {app: web}, ports: [{name: http, port: 80}]}' | k create -f - 2>&1)
contains "a headless Service over the same pods" "$out" "service/web-headless created"
check "kubectl run dns-client (busybox, ClusterFirst)" k run dns-client --image=busybox:1.35 --command -- sleep 3600
check "the dns-client pod becomes Ready" k wait --for=condition=Ready pod/dns-client --timeout=120s
out=$(k exec dns-client -- cat /etc/resolv.conf 2>&1)
contains "the pod's resolv.conf names the cluster DNS" "$out" "nameserver 10.96.0.10"
contains "the pod's resolv.conf has the namespace's search path" "$out" "search default.svc.cluster.local svc.cluster.local cluster.local"
contains "the pod's resolv.conf has ndots:5" "$out" "options ndots:5"
out=$(k exec dns-client -- nslookup web.default.svc.cluster.local 2>&1)
contains "nslookup web.default.svc.cluster.local answers the cluster IP" "$out" "Address: $cip"
out=$(k exec dns-client -- wget -qO- http://web/ 2>&1)
contains "wget http://web/ (short name, search path, getaddrinfo) reaches nginx" "$out" "Welcome to nginx!"
headless_both() {
    local out
    out=$(k exec dns-client -- nslookup web-headless.default.svc.cluster.local 2>&1)
    [[ $out == *"Address: $ip1"* && $out == *"Address: $ip2"* ]]
}
verdict "the headless Service's name answers both pod IPs" \
    "$(k exec dns-client -- nslookup web-headless.default.svc.cluster.local 2>&1)" poll 20 headless_both
out=$(k exec dns-client -- nslookup "$cip" 2>&1)
contains "the cluster IP's reverse name is the Service's" "$out" "name = web.default.svc.cluster.local"
out=$(k exec dns-client -- nslookup no-such-service.default.svc.cluster.local 2>&1)
contains "an unknown Service name is NXDOMAIN" "$out" "NXDOMAIN"
# In-cluster clients: the kubernetes Service leads to the API server's lab address on lo. busybox's TLS client
# cannot talk to the API server (handshake failure), so curl runs on the host inside the pod's network namespace,
# with the pod's token and CA as an in-cluster client reads them from its kube-api-access volume.
out=$(k get endpoints kubernetes -o 'jsonpath={.subsets[*].addresses[*].ip}:{.subsets[*].ports[*].port}' 2>&1)
contains "the kubernetes Endpoints point at the API server's lab address" "$out" "169.254.64.1:6443"
duid=$(k get pod dns-client -o 'jsonpath={.metadata.uid}' 2>/dev/null)
api_dir=$(echo "${SKIFF_STATE:-/var/lib/skiff}/agent/pods/$duid/volumes/kubernetes.io~projected"/kube-api-access-*)
in_pod() { nsenter --net="/run/skiff/pods/$duid/ns/net" "$@"; }
out=$(in_pod curl -sS --max-time 5 --cacert "$api_dir/ca.crt" https://10.96.0.1/version 2>&1)
contains "from the pod's network namespace https://10.96.0.1/version answers (certificate verified)" "$out" '"gitVersion"'
out=$(in_pod curl -sS --max-time 5 --cacert "$api_dir/ca.crt" -H "Authorization: Bearer $(cat "$api_dir/token" 2>/dev/null)" \
    https://10.96.0.1/api/v1/namespaces/default/pods 2>&1)
contains "  ... with the pod's token it is system:serviceaccount:default:default" "$out" \
    'User \"system:serviceaccount:default:default\" cannot list resource \"pods\"'
out=$(k exec dns-client -- nslookup example.invalid 2>&1)
contains "a name outside the cluster goes upstream (none here: SERVFAIL)" "$out" "SERVFAIL"
check "kubectl delete service web-headless" k delete service web-headless
check "kubectl delete pod web-1 web-2 client dns-client" timeout 120 kubectl --cache-dir "$cache" delete pod web-1 web-2 client dns-client
no_endpoints() { [[ -z $(k get endpoints web -o 'jsonpath={.subsets[*].addresses[*].ip}') ]]; }
verdict "the Endpoints of web are empty once the pods are gone" "$(k get endpoints web -o yaml 2>&1)" poll 20 no_endpoints
# curl exits 7 when the connection is refused (a silent drop would be 28, a timeout).
refused() { curl -sS --max-time 5 -o /dev/null "http://$cip/"; [[ $? -eq 7 ]]; }
verdict "the cluster IP without endpoints refuses connections" "$(curl -sS --max-time 5 "http://$cip/" 2>&1)" poll 20 refused
check "kubectl delete service web" k delete service web
endpoints_gone() { local out; out=$(k get endpoints web 2>&1); [[ $out == *NotFound* ]]; }
verdict "the Endpoints of web are deleted with the Service" "$(k get endpoints web 2>&1)" poll 20 endpoints_gone

# ---------------------------------------------------------------------------------------------------------------
echo "== workloads: a Deployment, its rollout and its deletion; a DaemonSet; a Job; a StatefulSet; a CronJob"
# The CronJob runs every minute; its first scheduled Job is checked at the end of this section.
# none_left ARGS...: `kubectl get ARGS -o name` answers, and with nothing.
none_left() { local out; out=$(k get "$@" -o name 2>/dev/null) || return 1; [[ -z $out ]]; }
check "kubectl create cronjob tick (every minute)" k create cronjob tick --image=busybox:1.35 --schedule='*/1 * * * *' -- echo tick
check "kubectl create deployment hello --image=nginx --replicas=2" k create deployment hello --image=nginx --replicas=2
check "kubectl rollout status deployment/hello" k rollout status deployment/hello --timeout=120s
out=$(k get deployment hello 2>&1)
contains "kubectl get deployment shows 2/2 ready" "$out" "2/2"
rs1=$(k get rs -l app=hello -o 'jsonpath={.items[0].metadata.name}' 2>/dev/null)
owners=$(k get pods -l app=hello -o 'jsonpath={range .items[*]}{.metadata.ownerReferences[0].name}{" "}{end}' 2>&1)
contains "both pods belong to the ReplicaSet $rs1" "$owners" "$rs1 $rs1"
out=$(k expose deployment hello --port=80 2>&1)
contains "kubectl expose deployment hello" "$out" "service/hello exposed"
hcip=$(k get service hello -o 'jsonpath={.spec.clusterIP}' 2>/dev/null)
verdict "curl http://<hello cluster IP>/ reaches the Deployment's nginx" "$(curl -sS --max-time 5 "http://$hcip/" 2>&1)" \
    poll 30 sh -c "curl -sS --max-time 5 http://$hcip/ | grep -q 'Welcome to nginx!'"
check "kubectl scale deployment/hello --replicas=3" k scale deployment/hello --replicas=3
check "the third replica becomes ready" k rollout status deployment/hello --timeout=120s
three_pods() { [[ $(k get pods -l app=hello --field-selector=status.phase=Running -o name | wc -l) -eq 3 ]]; }
verdict "three hello pods run" "$(k get pods -l app=hello 2>&1)" poll 30 three_pods
# A PodDisruptionBudget that allows no disruption: the eviction API (what kubectl drain uses) refuses.
check "kubectl create pdb hello --min-available=3" k create pdb hello --selector=app=hello --min-available=3
pdb_counted() { [[ $(k get pdb hello -o 'jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}' 2>/dev/null) == 3/0 ]]; }
verdict "the budget counts 3 healthy pods and allows 0 disruptions" "$(k get pdb hello 2>&1)" poll 30 pdb_counted
victim=$(k get pods -l app=hello -o 'jsonpath={.items[0].metadata.name}' 2>/dev/null)
printf '{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"%s","namespace":"default"}}' "$victim" >"$work/eviction.json"
out=$(k create --raw "/api/v1/namespaces/default/pods/$victim/eviction" -f "$work/eviction.json" 2>&1)
contains "evicting $victim is refused by the budget" "$out" "Cannot evict pod as it would violate the pod's disruption budget"
check "the pod is still there" k get pod "$victim"
check "kubectl delete pdb hello" k delete pdb hello
check "kubectl rollout restart deployment/hello" k rollout restart deployment/hello
check "the restart rolls out" k rollout status deployment/hello --timeout=180s
rs2=$(k get deployment hello -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null)
contains "the Deployment is at revision 2" "$rs2" "2"
only_new() {
    local hashes
    hashes=$(k get pods -l app=hello -o 'jsonpath={range .items[*]}{.metadata.labels.pod-template-hash}{"\n"}{end}' | sort -u)
    [[ $(wc -l <<<"$hashes") -eq 1 && "hello-$hashes" != "$rs1" ]]
}
verdict "after the rollout every pod comes from the new ReplicaSet" "$(k get pods -l app=hello --show-labels 2>&1)" poll 60 only_new
out=$(k rollout history deployment/hello 2>&1)
contains "kubectl rollout history lists revision 2" "$out" "2 "
check "kubectl rollout undo deployment/hello" k rollout undo deployment/hello
check "the undo rolls out" k rollout status deployment/hello --timeout=180s
back_to_first() {
    [[ $(k get pods -l app=hello -o 'jsonpath={range .items[*]}{.metadata.ownerReferences[0].name}{"\n"}{end}' | sort -u) == "$rs1" ]]
}
verdict "after the undo every pod comes from the first ReplicaSet again" "$(k get pods -l app=hello -o wide 2>&1)" poll 60 back_to_first
check "kubectl delete deployment hello" timeout 120 kubectl --cache-dir "$cache" delete deployment hello
verdict "its ReplicaSets and pods are deleted (garbage collector)" "$(k get rs,pods -l app=hello 2>&1)" poll 120 none_left rs,pods -l app=hello
check "kubectl delete service hello" k delete service hello

out=$(printf '%s\n' 'apiVersion: apps/v1' 'kind: DaemonSet' 'metadata: {name: node-agent}' \
    'spec:' '  selector: {matchLabels: {app: node-agent}}' \
    '  template:' '    metadata: {labels: {app: node-agent}}' \
    '    spec: {terminationGracePeriodSeconds: 1, containers: [{name: agent, image: "busybox:1.35", command: [sleep, "3600"]}]}' | k apply -f - 2>&1)
contains "kubectl apply -f of a DaemonSet" "$out" "daemonset.apps/node-agent created"
check "kubectl rollout status daemonset/node-agent" k rollout status daemonset/node-agent --timeout=120s
node=$(k get nodes -o 'jsonpath={.items[0].metadata.name}' 2>/dev/null)
out=$(k get pods -l app=node-agent -o wide 2>&1)
contains "the DaemonSet's pod runs on $node" "$out" "$node"
# History: a new image is revision 2; undo brings revision 1's template back (ControllerRevisions).
check "kubectl set image daemonset/node-agent agent=busybox:latest" k set image daemonset/node-agent agent=busybox:latest
check "the DaemonSet rolls out the new image" k rollout status daemonset/node-agent --timeout=120s
out=$(k rollout history daemonset/node-agent 2>&1)
contains "kubectl rollout history daemonset lists revision 2" "$out" "2 "
out=$(k get controllerrevisions -l app=node-agent 2>&1)
contains "kubectl get controllerrevisions names the DaemonSet" "$out" "daemonset.apps/node-agent"
check "kubectl rollout undo daemonset/node-agent" k rollout undo daemonset/node-agent
check "the undo rolls out" k rollout status daemonset/node-agent --timeout=120s
ds_image() { [[ $(k get pods -l app=node-agent -o 'jsonpath={.items[*].spec.containers[0].image}' 2>/dev/null) == busybox:1.35 ]]; }
verdict "the DaemonSet's pod runs busybox:1.35 again" "$(k get pods -l app=node-agent -o wide 2>&1)" poll 60 ds_image
check "kubectl delete daemonset node-agent" timeout 120 kubectl --cache-dir "$cache" delete daemonset node-agent
verdict "the DaemonSet's pod is deleted" "$(k get pods -l app=node-agent 2>&1)" poll 120 none_left pods -l app=node-agent

check "kubectl create job hello-job" k create job hello-job --image=busybox:1.35 -- sh -c 'echo job done'
check "kubectl wait --for=condition=complete job/hello-job" k wait --for=condition=complete job/hello-job --timeout=120s
out=$(k get job hello-job 2>&1)
contains "kubectl get job shows 1/1 completions" "$out" "1/1"
out=$(k logs job/hello-job 2>&1)
contains "kubectl logs job/hello-job" "$out" "job done"
check "kubectl delete job hello-job" timeout 120 kubectl --cache-dir "$cache" delete job hello-job
verdict "the Job's pod is deleted with it" "$(k get pods -l job-name=hello-job 2>&1)" poll 60 none_left pods -l job-name=hello-job

# A StatefulSet behind a headless Service: stable pod names, created in order, each with its own DNS name.
printf '%s\n' 'apiVersion: v1' 'kind: Service' 'metadata: {name: db}' \
    'spec: {clusterIP: None, selector: {app: db}, ports: [{port: 80}]}' '---' \
    'apiVersion: apps/v1' 'kind: StatefulSet' 'metadata: {name: db}' \
    'spec:' '  serviceName: db' '  replicas: 2' '  selector: {matchLabels: {app: db}}' \
    '  template:' '    metadata: {labels: {app: db}}' \
    '    spec: {containers: [{name: nginx, image: nginx}]}' >"$work/sts.yml"
check "kubectl apply -f a headless Service and a StatefulSet" k apply -f "$work/sts.yml"
check "kubectl rollout status statefulset/db" k rollout status statefulset/db --timeout=180s
out=$(k get pods -l app=db -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{end}' 2>&1)
contains "the StatefulSet's pods are db-0 and db-1" "$out" "db-0 db-1"
check "kubectl run sts-client (busybox)" k run sts-client --image=busybox:1.35 --command -- sleep 3600
check "the sts-client pod becomes Ready" k wait --for=condition=Ready pod/sts-client --timeout=120s
db0=$(k get pod db-0 -o 'jsonpath={.status.podIP}' 2>/dev/null)
out=$(k exec sts-client -- nslookup db-0.db.default.svc.cluster.local 2>&1)
contains "db-0.db.default.svc.cluster.local resolves to db-0's IP $db0" "$out" "Address: $db0"
check "kubectl scale statefulset db --replicas=1" k scale statefulset db --replicas=1
db1_gone() { [[ $(k get pods -l app=db -o name 2>/dev/null) == "pod/db-0" ]]; }
verdict "scaling down removes db-1 and keeps db-0" "$(k get pods -l app=db 2>&1)" poll 120 db1_gone
check "kubectl delete statefulset db" timeout 120 kubectl --cache-dir "$cache" delete statefulset db
verdict "the StatefulSet's pods are deleted" "$(k get pods -l app=db 2>&1)" poll 120 none_left pods -l app=db
check "kubectl delete service db; kubectl delete pod sts-client" \
    timeout 120 sh -c "kubectl --cache-dir $cache delete service db && kubectl --cache-dir $cache delete pod sts-client"

# ---------------------------------------------------------------------------------------------------------------
echo "== storage: the local-path class, a claim written and read by two pods, a StatefulSet's claim templates"
storage=$state/storage
out=$(k get storageclass 2>&1)
contains "kubectl get storageclass shows local-path (default)" "$out" "local-path (default)"
printf '%s\n' 'apiVersion: v1' 'kind: PersistentVolumeClaim' 'metadata: {name: data}' \
    'spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}' '---' \
    'apiVersion: v1' 'kind: Pod' 'metadata: {name: writer}' \
    'spec:' '  terminationGracePeriodSeconds: 1' \
    '  containers: [{name: w, image: "busybox:1.35", command: [sh, -c, "echo persisted > /data/hello && sleep 3600"], volumeMounts: [{name: d, mountPath: /data}]}]' \
    '  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]' >"$work/pvc.yml"
check "kubectl apply -f a claim and a pod using it" k apply -f "$work/pvc.yml"
check "the writer pod becomes Ready" k wait --for=condition=Ready pod/writer --timeout=120s
check "the claim is Bound" k wait --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout=60s
out=$(k get pvc data 2>&1)
contains "kubectl get pvc shows the class and RWO" "$out" "local-path"
contains "kubectl get pvc shows RWO" "$out" "RWO"
pvc_uid=$(k get pvc data -o 'jsonpath={.metadata.uid}' 2>/dev/null)
pv=$(k get pvc data -o 'jsonpath={.spec.volumeName}' 2>/dev/null)
contains "the claim's volume is pvc-<claim uid>" "$pv" "pvc-$pvc_uid"
pv_path=$(k get pv "$pv" -o 'jsonpath={.spec.hostPath.path}' 2>/dev/null)
contains "the volume is a directory under $storage" "$pv_path" "$storage/pvc-${pvc_uid}_default_data"
verdict "the pod's file is on the host" "$(ls -la "$pv_path" 2>&1)" sh -c "[ \"\$(cat '$pv_path/hello')\" = persisted ]"
check "kubectl delete pod writer" timeout 60 kubectl --cache-dir "$cache" delete pod writer
printf '%s\n' 'apiVersion: v1' 'kind: Pod' 'metadata: {name: reader}' \
    'spec:' '  restartPolicy: Never' \
    '  containers: [{name: r, image: "busybox:1.35", command: [cat, /data/hello], volumeMounts: [{name: d, mountPath: /data}]}]' \
    '  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]' >"$work/reader.yml"
check "kubectl create a second pod on the same claim" k create -f "$work/reader.yml"
check "the reader pod succeeds" k wait --for=jsonpath='{.status.phase}'=Succeeded pod/reader --timeout=120s
out=$(k logs reader 2>&1)
contains "the second pod reads what the first wrote" "$out" "persisted"
check "kubectl delete pod reader; kubectl delete pvc data" \
    timeout 120 sh -c "kubectl --cache-dir $cache delete pod reader && kubectl --cache-dir $cache delete pvc data"
pv_gone() { local out; out=$(k get pv "$pv" 2>&1); [[ $out == *NotFound* ]]; }
verdict "the volume is deleted with its claim (reclaimPolicy Delete)" "$(k get pv 2>&1)" poll 60 pv_gone

printf '%s\n' 'apiVersion: apps/v1' 'kind: StatefulSet' 'metadata: {name: www}' \
    'spec:' '  serviceName: www' '  replicas: 2' '  selector: {matchLabels: {app: www}}' \
    '  template:' '    metadata: {labels: {app: www}}' \
    '    spec:' '      terminationGracePeriodSeconds: 1' \
    '      containers: [{name: c, image: "busybox:1.35", command: [sleep, "3600"], volumeMounts: [{name: data, mountPath: /data}]}]' \
    '  volumeClaimTemplates:' \
    '  - metadata: {name: data}' '    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}}' >"$work/www.yml"
check "kubectl apply -f a StatefulSet with volumeClaimTemplates" k apply -f "$work/www.yml"
check "kubectl rollout status statefulset/www" k rollout status statefulset/www --timeout=180s
out=$(k get pvc 2>&1)
contains "claim data-www-0 is Bound" "$out" "data-www-0"
contains "claim data-www-1 exists" "$out" "data-www-1"
token=skiff-$RANDOM$RANDOM
check "kubectl exec www-0 writes a token to its volume" k exec www-0 -- sh -c "echo $token > /data/token"
old_uid=$(k get pod www-0 -o 'jsonpath={.metadata.uid}' 2>/dev/null)
check "kubectl delete pod www-0" timeout 60 kubectl --cache-dir "$cache" delete pod www-0
www0_back() { local u; u=$(k get pod www-0 -o 'jsonpath={.metadata.uid}' 2>/dev/null) && [[ -n $u && $u != "$old_uid" ]]; }
verdict "www-0 is created again" "$(k get pods -l app=www 2>&1)" poll 60 www0_back
check "the new www-0 becomes Ready" k wait --for=condition=Ready pod/www-0 --timeout=120s
out=$(k exec www-0 -- cat /data/token 2>&1)
contains "the new www-0 finds the token on the same volume" "$out" "$token"
check "kubectl delete statefulset www" timeout 120 kubectl --cache-dir "$cache" delete statefulset www
verdict "the StatefulSet's pods are deleted" "$(k get pods -l app=www 2>&1)" poll 120 none_left pods -l app=www
out=$(k get pvc data-www-0 data-www-1 -o name 2>&1)
contains "its claims are kept (persistentVolumeClaimRetentionPolicy Retain)" "$out" "persistentvolumeclaim/data-www-1"
www_paths=$(k get pv -o 'jsonpath={range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null)
both_dirs() { [[ $(wc -w <<<"$www_paths") -eq 2 ]] && for d in $www_paths; do [[ -d $d ]] || return 1; done; }
verdict "the two claims' directories exist on the host" "$www_paths" both_dirs
check "kubectl delete pvc data-www-0 data-www-1" timeout 120 kubectl --cache-dir "$cache" delete pvc data-www-0 data-www-1
verdict "their volumes are deleted" "$(k get pv 2>&1)" poll 60 none_left pv

# A generic ephemeral volume: the ephemeral volume controller makes the claim <pod>-<volume>, owned by the pod,
# local-path provisions it on this node, and the garbage collector deletes it with the pod.
printf '%s\n' 'apiVersion: v1' 'kind: Pod' 'metadata: {name: scratch}' \
    'spec:' '  terminationGracePeriodSeconds: 1' \
    '  containers: [{name: c, image: "busybox:1.35", command: [sh, -c, "echo ephemeral > /scratch/f && sleep 3600"], volumeMounts: [{name: tmp, mountPath: /scratch}]}]' \
    '  volumes: [{name: tmp, ephemeral: {volumeClaimTemplate: {metadata: {labels: {use: scratch}}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}}}}}]' \
    >"$work/scratch.yml"
check "kubectl create a pod with an ephemeral volume" k create -f "$work/scratch.yml"
check "the pod becomes Ready" k wait --for=condition=Ready pod/scratch --timeout=120s
out=$(k get pvc scratch-tmp -o 'jsonpath={.status.phase} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.labels.use}' 2>&1)
contains "its claim scratch-tmp is Bound, owned by Pod/scratch, with the template's labels" "$out" "Bound Pod/scratch scratch"
out=$(k exec scratch -- cat /scratch/f 2>&1)
contains "the container wrote to the volume" "$out" "ephemeral"
eph_pv=$(k get pvc scratch-tmp -o 'jsonpath={.spec.volumeName}' 2>/dev/null)
check "kubectl delete pod scratch" timeout 60 kubectl --cache-dir "$cache" delete pod scratch
eph_gone() { local out; out=$(k get pvc scratch-tmp 2>&1); [[ $out == *NotFound* ]]; }
verdict "the claim is deleted with its pod (garbage collector)" "$(k get pvc 2>&1)" poll 60 eph_gone
eph_pv_gone() { local out; out=$(k get pv "$eph_pv" 2>&1); [[ $out == *NotFound* ]]; }
verdict "and its volume with it" "$(k get pv 2>&1)" poll 60 eph_pv_gone

# The node removes a deleted volume's directory within a minute (checked after the CronJob section, which waits anyway).
storage_dirs="$pv_path $www_paths"

# The CronJob created at the start of this section: a Job by hand from it, and its first scheduled run.
check "kubectl create job tick-now --from=cronjob/tick" k create job tick-now --from=cronjob/tick
check "kubectl wait --for=condition=complete job/tick-now" k wait --for=condition=complete job/tick-now --timeout=120s
scheduled_done() {
    k get jobs -o 'jsonpath={range .items[*]}{.metadata.ownerReferences[0].name}/{.metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp}/{.status.succeeded}{"\n"}{end}' |
        grep -qE '^tick/[0-9]{4}-.*/1$'
}
verdict "the CronJob's scheduled Job ran to completion (within 2 minutes)" "$(k get cronjob,jobs 2>&1)" poll 150 scheduled_done
out=$(k get cronjob tick 2>&1)
contains "kubectl get cronjob shows its schedule" "$out" "*/1 * * * *"
check "kubectl delete cronjob tick; kubectl delete job tick-now" \
    timeout 120 sh -c "kubectl --cache-dir $cache delete cronjob tick && kubectl --cache-dir $cache delete job tick-now --ignore-not-found"
tick_gone() { local out; out=$(k get jobs,pods -o name 2>/dev/null) || return 1; ! grep -q tick <<<"$out"; }
verdict "the CronJob's Jobs and pods are deleted" "$(k get jobs,pods 2>&1)" poll 120 tick_gone

dirs_gone() { for d in $storage_dirs; do [[ ! -e $d ]] || return 1; done; [[ -n ${storage_dirs// /} ]]; }
verdict "the node removes the deleted volumes' directories" "$(ls -la "$storage" 2>&1)" poll 120 dirs_gone

# ---------------------------------------------------------------------------------------------------------------
echo "== policy: a LimitRange and a ResourceQuota in their own namespace"
check "kubectl create namespace team-a" k create namespace team-a
out=$(printf '%s\n' 'apiVersion: v1' 'kind: LimitRange' 'metadata: {name: limits, namespace: team-a}' \
    'spec: {limits: [{type: Container, default: {cpu: 200m, memory: 64Mi}, defaultRequest: {cpu: 100m, memory: 32Mi}, max: {cpu: 500m}}]}' |
    k create -f - 2>&1)
contains "a LimitRange with defaults and a maximum" "$out" "limitrange/limits created"
check "kubectl run lr-pod (no resources)" k -n team-a run lr-pod --image=busybox:1.35 --command -- sleep 3600
out=$(k -n team-a get pod lr-pod -o 'jsonpath={.spec.containers[0].resources.requests.cpu}/{.spec.containers[0].resources.limits.memory}' 2>&1)
contains "the pod gets the LimitRange's default request and limit" "$out" "100m/64Mi"
out=$(k -n team-a get pod lr-pod -o 'jsonpath={.metadata.annotations.kubernetes\.io/limit-ranger}' 2>&1)
contains "  ... and the LimitRanger annotation" "$out" "LimitRanger plugin set: cpu, memory request for container lr-pod; cpu, memory limit for container lr-pod"
out=$(printf '%s\n' 'apiVersion: v1' 'kind: Pod' 'metadata: {name: too-big, namespace: team-a}' \
    'spec: {containers: [{name: c, image: "busybox:1.35", resources: {limits: {cpu: "1"}}}]}' | k create -f - 2>&1)
contains "a pod over the LimitRange's maximum is refused" "$out" "maximum cpu usage per Container is 500m, but limit is 1"
out=$(k -n team-a create quota compute --hard=pods=2,requests.cpu=1 2>&1)
contains "kubectl create quota compute --hard=pods=2,requests.cpu=1" "$out" "resourcequota/compute created"
quota_used() { [[ $(k -n team-a get quota compute -o 'jsonpath={.status.used.pods}/{.status.used.requests\.cpu}') == 1/100m ]]; }
verdict "the quota counts the pod already there" "$(k -n team-a get quota compute -o yaml 2>&1)" poll 30 quota_used
check "a second pod fits the quota" k -n team-a run lr-pod2 --image=busybox:1.35 --command -- sleep 3600
out=$(k -n team-a run lr-pod3 --image=busybox:1.35 --command -- sleep 3600 2>&1)
contains "a third pod exceeds it" "$out" "exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
out=$(k -n team-a get quota 2>&1)
contains "kubectl get quota shows the usage" "$out" "pods: 2/2"
check "kubectl delete namespace team-a" timeout 120 kubectl --cache-dir "$cache" delete namespace team-a --wait=false

# ---------------------------------------------------------------------------------------------------------------
echo "== resource metrics and a HorizontalPodAutoscaler"
check "kubectl create deployment burn (a busy loop)" k create deployment burn --image=busybox:1.35 -- sh -c 'while :; do :; done'
check "kubectl set resources deployment burn --requests=cpu=50m" k set resources deployment burn --requests=cpu=50m
check "kubectl patch deployment burn (terminationGracePeriodSeconds 1)" \
    k patch deployment burn -p '{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":1}}}}'
check "kubectl rollout status deployment/burn" k rollout status deployment/burn --timeout=120s
# The API server scrapes every 15 s and needs two samples for a rate.
top_pod() { k top pod -l app=burn --no-headers | grep -qE '^burn-[a-z0-9-]+ +[0-9]+m '; }
verdict "kubectl top pod shows the busy pod's CPU" "$(k top pod -l app=burn 2>&1)" poll 90 top_pod
out=$(k top node 2>&1)
contains "kubectl top node shows this node" "$out" "$(hostname)"
out=$(k get --raw /apis/metrics.k8s.io/v1beta1/namespaces/default/pods 2>&1)
contains "the metrics.k8s.io API answers PodMetrics" "$out" '"kind":"PodMetricsList"'
out=$(k autoscale deployment burn --cpu-percent=50 --min=1 --max=2 2>&1)
contains "kubectl autoscale deployment burn --cpu-percent=50 --min=1 --max=2" "$out" "horizontalpodautoscaler.autoscaling/burn autoscaled"
scaled() { [[ $(k get deployment burn -o 'jsonpath={.spec.replicas}') == 2 ]]; }
verdict "the HPA scales the busy Deployment to its maximum" "$(k describe hpa burn 2>&1)" poll 120 scaled
out=$(k get hpa burn 2>&1)
contains "kubectl get hpa shows the utilization against the target" "$out" "/50%"
out=$(k describe hpa burn 2>&1)
contains "kubectl describe hpa shows the rescale event" "$out" "SuccessfulRescale"
check "kubectl delete hpa burn; kubectl delete deployment burn" \
    timeout 120 sh -c "kubectl --cache-dir $cache delete hpa burn && kubectl --cache-dir $cache delete deployment burn"
burn_gone() { none_left pods -l app=burn; }
verdict "the busy pods are gone" "$(k get pods -l app=burn 2>&1)" poll 60 burn_gone

# ---------------------------------------------------------------------------------------------------------------
echo "== NetworkPolicies (enforced by the agent)"
check "kubectl run np-web (nginx)" k run np-web --image=nginx --labels=app=np-web
check "kubectl run np-client" k run np-client --image=busybox:1.35 --labels=role=client --command -- sleep 3600
check "kubectl run np-other" k run np-other --image=busybox:1.35 --labels=role=other --command -- sleep 3600
check "the three pods become Ready" k wait --for=condition=Ready pod/np-web pod/np-client pod/np-other --timeout=120s
webip=$(k get pod np-web -o 'jsonpath={.status.podIP}' 2>/dev/null)
# ask POD: an HTTP request from POD to np-web with busybox nc (2 s timeout; busybox 1.35's `wget -T` crashes),
# then nc's exit code. reach POD: nginx answers; blocked POD: the request ran in the pod and got no answer.
ask() { k exec "$1" -- sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 $webip 80; echo rc=\$?" 2>&1; }
reach() { ask "$1" | grep -q '200 OK'; }
blocked() { local out; out=$(ask "$1"); [[ $out == *rc=* && $out != *'200 OK'* ]]; }
verdict "without a policy np-other reaches np-web" "$(ask np-other)" poll 20 reach np-other
out=$(printf '%s\n' 'apiVersion: networking.k8s.io/v1' 'kind: NetworkPolicy' 'metadata: {name: web-deny-all}' \
    'spec: {podSelector: {matchLabels: {app: np-web}}, policyTypes: [Ingress]}' | k create -f - 2>&1)
contains "a default-deny ingress policy for np-web" "$out" "networkpolicy.networking.k8s.io/web-deny-all created"
verdict "  ... np-client can no longer reach np-web" "$(ask np-client)" poll 20 blocked np-client
out=$(printf '%s\n' 'apiVersion: networking.k8s.io/v1' 'kind: NetworkPolicy' 'metadata: {name: web-allow-client}' \
    'spec: {podSelector: {matchLabels: {app: np-web}}, ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 80}]}]}' |
    k create -f - 2>&1)
contains "a policy allowing role=client on port 80" "$out" "networkpolicy.networking.k8s.io/web-allow-client created"
verdict "  ... np-client reaches np-web again" "$(ask np-client)" poll 20 reach np-client
verdict "  ... np-other still cannot" "$(ask np-other)" blocked np-other
verdict "  ... the node itself still reaches np-web (probes)" "$(curl -sS --max-time 5 "http://$webip/" 2>&1)" \
    sh -c "curl -sS --max-time 5 http://$webip/ | grep -q 'Welcome to nginx!'"
out=$(k get netpol 2>&1)
contains "kubectl get netpol lists both policies with their selector" "$out" "app=np-web"
check "kubectl delete netpol web-deny-all web-allow-client" k delete netpol web-deny-all web-allow-client
verdict "without policies np-other reaches np-web again" "$(ask np-other)" poll 20 reach np-other
check "kubectl delete pod np-web np-client np-other" timeout 120 kubectl --cache-dir "$cache" delete pod np-web np-client np-other --grace-period=1

# ---------------------------------------------------------------------------------------------------------------
echo "== an Indexed Job, a pod failure policy, a TokenReview"
# shellcheck disable=SC2016 # expanded inside the pod
out=$(printf '%s\n' 'apiVersion: batch/v1' 'kind: Job' 'metadata: {name: indexed}' \
    'spec: {completions: 3, parallelism: 3, completionMode: Indexed, template: {spec: {restartPolicy: Never, containers: [{name: c, image: "busybox:1.35", command: [sh, -c, "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]}]}}}' |
    k create -f - 2>&1)
contains "an Indexed Job of three completions" "$out" "job.batch/indexed created"
check "kubectl wait --for=condition=complete job/indexed" k wait --for=condition=complete job/indexed --timeout=120s
out=$(k get job indexed -o 'jsonpath={.status.completedIndexes}' 2>&1)
contains "its completed indexes are 0-2" "$out" "0-2"
out=$(for p in $(k get pods -l job-name=indexed -o name 2>/dev/null); do k logs "$p"; done 2>&1 | sort)
contains "each pod has its JOB_COMPLETION_INDEX and hostname" "$out" "index=2 host=indexed-2"
out=$(printf '%s\n' 'apiVersion: batch/v1' 'kind: Job' 'metadata: {name: fail-fast}' \
    'spec: {backoffLimit: 6, podFailurePolicy: {rules: [{action: FailJob, onExitCodes: {operator: In, values: [42]}}]}, template: {spec: {restartPolicy: Never, containers: [{name: main, image: "busybox:1.35", command: [sh, -c, "exit 42"]}]}}}' |
    k create -f - 2>&1)
contains "a Job whose pod exits 42 under a FailJob rule" "$out" "job.batch/fail-fast created"
check "  ... fails at once (no retries)" k wait --for=condition=failed job/fail-fast --timeout=120s
out=$(k get job fail-fast -o 'jsonpath={.status.conditions[?(@.type=="Failed")].reason} {.status.failed}' 2>&1)
contains "  ... with reason PodFailurePolicy after one pod" "$out" "PodFailurePolicy 1"
check "kubectl delete job indexed fail-fast" timeout 120 kubectl --cache-dir "$cache" delete job indexed fail-fast
token=$(k create token default 2>/dev/null)
out=$(printf '%s\n' 'apiVersion: authentication.k8s.io/v1' 'kind: TokenReview' "spec: {token: \"$token\"}" |
    k create -f - -o 'jsonpath={.status.authenticated} {.status.user.username}' 2>&1)
contains "a TokenReview of a service-account token" "$out" "true system:serviceaccount:default:default"
out=$(printf '%s\n' 'apiVersion: authentication.k8s.io/v1' 'kind: TokenReview' 'spec: {token: not-a-token}' |
    k create -f - -o 'jsonpath={.status.authenticated}' 2>&1)
contains "  ... and of a bad token" "$out" "false"
out=$(k get --raw /.well-known/openid-configuration 2>&1)
contains "the service-account issuer's discovery document" "$out" '"jwks_uri"'

# ---------------------------------------------------------------------------------------------------------------
echo "== bad input"
out=$(printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n' | k create -f - 2>&1)
contains "a pod without image is Invalid" "$out" 'spec.containers[0].image: Required value'
out=$(printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  bogus: 1\n  containers:\n  - name: c\n    image: nginx\n' | k create -f - 2>&1)
contains "an unknown field is refused (strict validation)" "$out" 'unknown field "spec.bogus"'
out=$(curl -sk --max-time 5 https://127.0.0.1:6443/api/v1/pods 2>&1)
contains "anonymous requests get 401" "$out" '"code":401'

# ---------------------------------------------------------------------------------------------------------------
echo "== down.sh"
check "down.sh" "$repo/scripts/down.sh"
check "nothing is left behind (down.sh --check)" "$repo/scripts/down.sh" --check
for pid in $pids_after; do
    if kill -0 "$pid" 2>/dev/null; then fail "lab process $pid is gone"; else pass "lab process $pid is gone"; fi
done
verdict "bridge skiff0 is removed" "skiff0 still exists" sh -c '! ip link show skiff0 >/dev/null 2>&1'
verdict "nft table ip skiff-cni is removed" "the table still exists" sh -c '! nft list table ip skiff-cni >/dev/null 2>&1'
verdict "nft table ip skiff-proxy is removed" "the table still exists" sh -c '! nft list table ip skiff-proxy >/dev/null 2>&1'
verdict "nft table inet skiff-netpol is removed" "the table still exists" sh -c '! nft list table inet skiff-netpol >/dev/null 2>&1'
verdict "the cluster DNS and API addresses are removed from lo" "$(ip -4 -o addr show dev lo)" \
    sh -c '! ip -4 -o addr show dev lo | grep -qE "10.96.0.10/32|169.254.64.1/32"'
verdict "no mounts under /run/skiff" "$(grep ' /run/skiff' /proc/self/mountinfo)" sh -c "! grep -q ' /run/skiff' /proc/self/mountinfo"
check "down.sh a second time" "$repo/scripts/down.sh"

finish
