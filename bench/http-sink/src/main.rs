//! `http-sink ADDR [THREADS]`: accept HTTP/1.1 requests (keep-alive, Content-Length or
//! chunked-free bodies), answer each `200 OK` with `{"id":"sink-N"}`, count them, and print the
//! count on stderr every second while it changes and at Ctrl-C / SIGTERM.
//!
//! Only what a benchmark needs: no routing, no TLS. Parsing is minimal but correct for the
//! requests reqwest sends (request line, headers, `Content-Length` body; pipelining works).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(serve(addr));
}

async fn serve(addr: String) {
    let listener = TcpListener::bind(&addr).await.expect("bind");
    // The harness reads the port from the first line.
    println!("{}", listener.local_addr().expect("local addr"));
    let count = Arc::new(AtomicU64::new(0));
    let reporter = count.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let n = reporter.load(Ordering::Relaxed);
            if n != last {
                eprintln!("http-sink: {n} requests");
                last = n;
            }
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, count.clone()));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!("http-sink: {} requests in total", count.load(Ordering::Relaxed));
}

async fn connection(mut stream: TcpStream, count: Arc<AtomicU64>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut out = Vec::with_capacity(256);
    loop {
        // Answer every complete request in the buffer.
        while let Some(head_end) = find(&buf, b"\r\n\r\n") {
            let head = &buf[..head_end];
            let length = content_length(head);
            let total = head_end + 4 + length;
            if buf.len() < total {
                break;
            }
            let close = header_is(head, b"connection", b"close");
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            let body = format!("{{\"id\":\"sink-{n}\",\"status\":\"accepted\"}}");
            out.clear();
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
                    body.len(),
                    if close { "connection: close\r\n" } else { "" }
                )
                .as_bytes(),
            );
            out.extend_from_slice(body.as_bytes());
            buf.drain(..total);
            if stream.write_all(&out).await.is_err() || close {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

fn content_length(head: &[u8]) -> usize {
    header_value(head, b"content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

fn header_is(head: &[u8], name: &[u8], value: &[u8]) -> bool {
    header_value(head, name).is_some_and(|v| v.eq_ignore_ascii_case(value))
}
