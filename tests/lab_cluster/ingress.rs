//! The ingress add-on on the lab cluster: Traefik behind nginx on the LB. An HTTPRoute and an
//! Ingress each route their host name to a backend through the LB's port 80; the backend sees
//! this machine's address (nginx's PROXY protocol header, believed by Traefik); the
//! controller's NodePorts answer the LB only.

use super::*;
use std::io::Read;
use std::net::SocketAddr;

const HTTP_PORT: u16 = 80;
const HTTP_NODE_PORT: u16 = 30080;
const HTTPS_NODE_PORT: u16 = 30443;

/// The backend: the headers a request arrived with, as JSON.
const ECHO_JS: &str =
    "require('http').createServer((q,r)=>r.end(JSON.stringify({host:q.headers.host,\
xff:q.headers['x-forwarded-for']||'',real:q.headers['x-real-ip']||''}))).listen(8080)";

/// An HTTPRoute on the add-on's Gateway and a class-less Ingress (the default class), each
/// for its own host name, both to the Service `echo`.
const ROUTES: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: default
spec:
  parentRefs:
    - name: traefik
      namespace: traefik
  hostnames: [gateway.lab.test]
  rules:
    - backendRefs:
        - name: echo
          port: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: echo
  namespace: default
spec:
  rules:
    - host: ingress.lab.test
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: echo
                port:
                  number: 80
";

pub(super) fn routes_through_the_lb(c: &Cluster) {
    step("ingress: Traefik on the workers, its GatewayClass accepted");
    ready_pods_now(c, "traefik", "app.kubernetes.io/name=traefik", 2);
    let pods = c.json(&["-n", "traefik", "get", "pods"]);
    for p in pods["items"].as_array().unwrap() {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        assert!(node.starts_with('w'), "Traefik pod on {node}");
    }
    wait_for(
        "the GatewayClass traefik Accepted",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            let class = c.json(&["get", "gatewayclass", "traefik"]);
            condition_true(&class["status"], "Accepted")
        },
    );

    step(
        "ingress: an HTTPRoute and an Ingress through the LB's :80; the backend sees this machine",
    );
    let image = c.chat_image();
    c.k(&[
        "run",
        "echo",
        "--image",
        &image,
        "--image-pull-policy=IfNotPresent",
        "--labels",
        "app=echo",
        "--command",
        "--",
        "node",
        "-e",
        ECHO_JS,
    ]);
    c.k(&[
        "expose",
        "pod",
        "echo",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let routes = c.lab.dir.join("echo-routes.yaml");
    std::fs::write(&routes, ROUTES).unwrap();
    c.k(&["apply", "-f", routes.to_str().unwrap()]);
    c.k(&[
        "wait",
        "--for=condition=Ready",
        "pod/echo",
        "--timeout=120s",
    ]);
    for host in ["gateway.lab.test", "ingress.lab.test"] {
        let seen = wait_for(
            &format!("GET http://{host}/ through {LB}:{HTTP_PORT}"),
            Duration::from_secs(90),
            Duration::from_secs(2),
            || http_get(LB, HTTP_PORT, host),
        );
        let seen: Value = serde_json::from_str(&seen)
            .map_err(|e| format!("{e}: {seen}"))
            .unwrap();
        assert_eq!(seen["host"], host, "{seen}");
        assert_eq!(seen["xff"], MACHINE, "{seen}");
        assert_eq!(seen["real"], MACHINE, "{seen}");
    }
    let route = c.json(&["get", "httproute", "echo"]);
    let parent = &route["status"]["parents"][0];
    assert_eq!(condition_true(parent, "Accepted"), Ok(()), "{route:#}");
    // A host name no route has: Traefik's 404, through the same LB port.
    let unknown = http_get(LB, HTTP_PORT, "nobody.lab.test");
    assert!(
        unknown.as_ref().is_err_and(|e| e.contains(" 404 ")),
        "{unknown:?}"
    );

    step("ingress: the controller's NodePorts answer the LB only");
    for w in W {
        for port in [HTTP_NODE_PORT, HTTPS_NODE_PORT] {
            let sa: SocketAddr = format!("{w}:{port}").parse().unwrap();
            assert!(
                TcpStream::connect_timeout(&sa, Duration::from_secs(2)).is_err(),
                "{w}:{port} from this machine"
            );
            let from_lb = c.lab.ssh(
                LB,
                &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{w}/{port}'"),
            );
            assert!(from_lb.status.success(), "{}", describe(&from_lb));
        }
    }
    c.k(&["delete", "-f", routes.to_str().unwrap()]);
    c.k(&["delete", "pod,svc", "echo", "--wait=false"]);
}

/// `Ok` when `status` has the condition `kind` with status True.
fn condition_true(status: &Value, kind: &str) -> Result<(), String> {
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    match conditions.iter().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == "True" => Ok(()),
        other => Err(format!("{kind}: {other:?}")),
    }
}

/// The body of `GET /` with `Host: host` from `addr:port` (HTTP/1.0: one request, a plain
/// body); an error names the status line of any answer but 200.
fn http_get(addr: &str, port: u16, host: &str) -> Result<String, String> {
    let sa: SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let mut s =
        TcpStream::connect_timeout(&sa, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {answer:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("{status} ({body:?})"));
    }
    Ok(body.to_string())
}
