//! Serving a real directory: index files, content types, redirects, and every way
//! out of the directory refused.

use std::path::PathBuf;

use http_body_util::BodyExt as _;

use super::*;

/// A site: `public/` with files, and a secret beside it, in a temporary directory
/// removed when the returned one is dropped.
fn site() -> io::Result<(tempfile::TempDir, StaticFiles)> {
    let tmp = tempfile::tempdir()?;
    for (name, text) in [
        ("public/index.html", "<h1>home</h1>"),
        ("public/app.js", "console.log(1)"),
        ("public/style.css", "body{}"),
        ("public/data.json", "{}"),
        ("public/logo.png", "png"),
        ("public/icon.svg", "<svg/>"),
        ("public/blob.bin", "bin"),
        ("public/docs/index.html", "<h1>docs</h1>"),
        ("public/.env", "SECRET=1"),
        ("secret.txt", "outside"),
    ] {
        let path = tmp.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(
            tmp.path().join("secret.txt"),
            tmp.path().join("public/link.txt"),
        )?;
        // Links inside the directory to what is hidden in it.
        std::fs::create_dir_all(tmp.path().join("public/.release"))?;
        std::fs::write(tmp.path().join("public/.release/secret.txt"), "SECRET=2")?;
        symlink(
            tmp.path().join("public/.env"),
            tmp.path().join("public/envlink"),
        )?;
        symlink(
            tmp.path().join("public/.release"),
            tmp.path().join("public/current"),
        )?;
    }
    let files = StaticFiles::new(&tmp.path().join("public"))?;
    Ok((tmp, files))
}

async fn get(files: &StaticFiles, method: &str, path: &str) -> (u16, String, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap_or_default();
    let res = files.serve(&req).await;
    let status = res.status().as_u16();
    let header = |name| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let kind = match status {
        308 => header(header::LOCATION),
        _ => header(header::CONTENT_TYPE),
    };
    let body = res.into_body().collect().await.map(|c| c.to_bytes());
    let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
    (status, kind, body)
}

#[tokio::test]
async fn files_are_served_with_their_content_types() -> io::Result<()> {
    let (_tmp, files) = site()?;
    for (path, kind, body) in [
        ("/", "text/html; charset=utf-8", "<h1>home</h1>"),
        ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "console.log(1)",
        ),
        ("/style.css", "text/css; charset=utf-8", "body{}"),
        ("/data.json", "application/json", "{}"),
        ("/logo.png", "image/png", "png"),
        ("/icon.svg", "image/svg+xml", "<svg/>"),
        ("/blob.bin", "application/octet-stream", "bin"),
        ("/docs/", "text/html; charset=utf-8", "<h1>docs</h1>"),
        (
            "/%64ocs/index.html",
            "text/html; charset=utf-8",
            "<h1>docs</h1>",
        ),
    ] {
        assert_eq!(
            get(&files, "GET", path).await,
            (200, kind.to_owned(), body.to_owned()),
            "{path}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_directory_without_its_slash_redirects_and_head_has_no_body() -> io::Result<()> {
    let (_tmp, files) = site()?;
    assert_eq!(
        get(&files, "GET", "/docs?x=1").await,
        (308, "/docs/?x=1".to_owned(), String::new())
    );
    // `Location: //docs/` would send the browser to the host `docs`.
    for path in ["//docs", "///docs", "//docs//"] {
        let (status, location, _) = get(&files, "GET", path).await;
        if status == 308 {
            assert_eq!(location, "/docs/", "{path}");
        }
    }
    assert_eq!(get(&files, "GET", "//docs").await.0, 308);
    let (status, kind, body) = get(&files, "HEAD", "/app.js").await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(kind, "text/javascript; charset=utf-8");
    assert_eq!(get(&files, "POST", "/app.js").await.0, 405);
    Ok(())
}

#[tokio::test]
async fn nothing_outside_the_directory_nor_hidden_is_served() -> io::Result<()> {
    let (_tmp, files) = site()?;
    for path in [
        "/missing.html",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/.env",
        "/%2eenv",
        "/link.txt",
        "/envlink",
        "/current/secret.txt",
        "/app.js%00.png",
        "/%ff",
    ] {
        let (status, kind, body) = get(&files, "GET", path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(kind, "application/json", "{path}");
        assert!(
            !body.contains("outside") && !body.contains("SECRET"),
            "{path}"
        );
    }
    Ok(())
}

/// A FIFO is never opened (opening one blocks until someone writes to it, holding a
/// blocking thread for good), nor anything else that is not a regular file.
///
/// The request runs on a runtime of its own thread: were it stuck opening the FIFO,
/// its blocking thread would keep any runtime from shutting down, and the test would
/// hang instead of failing.
#[cfg(unix)]
#[test]
fn a_fifo_in_the_directory_is_not_served() -> io::Result<()> {
    let (tmp, files) = site()?;
    let fifo = tmp.path().join("public/pipe.txt");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo");
    let (answered, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let status = runtime.block_on(get(&files, "GET", "/pipe.txt")).0;
        let _ = answered.send(status);
    });
    let status = answer
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the request must not hang on the FIFO");
    assert_eq!(status, 404);
    drop(tmp);
    Ok(())
}

/// A file is streamed from its handle, not read whole: a file larger than one chunk
/// comes whole, with its length; `HEAD` gives the length and reads nothing.
#[tokio::test]
async fn a_large_file_is_streamed_with_its_length() -> io::Result<()> {
    let (tmp, files) = site()?;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(tmp.path().join("public/large.bin"), &content)?;
    for method in ["GET", "HEAD"] {
        let req = Request::builder()
            .method(method)
            .uri("/large.bin")
            .body(())
            .unwrap_or_default();
        let res = files.serve(&req).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers().get(header::CONTENT_LENGTH),
            Some(&HeaderValue::from(200_000u64)),
            "{method}"
        );
        let mut body = res.into_body();
        let (mut frames, mut got) = (0, Vec::new());
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map(|f| f.into_data());
            let data = data.unwrap_or_default();
            assert!(data.len() <= CHUNK, "a chunk of {}", data.len());
            got.extend_from_slice(&data);
            frames += 1;
        }
        match method {
            "GET" => {
                assert_eq!(got, content);
                assert!(frames >= 200_000 / CHUNK, "{frames} chunks");
            }
            _ => assert!(got.is_empty()),
        }
    }
    Ok(())
}

/// Downloads under way are bounded: past the node's places, 503 with `Retry-After`
/// until one ends; `HEAD` takes no place.
#[tokio::test]
async fn downloads_at_once_are_bounded() -> io::Result<()> {
    let (tmp, _) = site()?;
    let files = StaticFiles::with_downloads(&tmp.path().join("public"), 2)?;
    let request = |method: &str| {
        Request::builder()
            .method(method)
            .uri("/app.js")
            .body(())
            .unwrap_or_default()
    };
    // Two downloads whose clients have not taken their bodies yet.
    let first = files.serve(&request("GET")).await;
    let second = files.serve(&request("GET")).await;
    assert_eq!(
        (first.status(), second.status()),
        (
            200.try_into().unwrap_or_default(),
            200.try_into().unwrap_or_default()
        )
    );
    let third = files.serve(&request("GET")).await;
    assert_eq!(third.status(), 503);
    assert_eq!(
        third.headers().get(header::RETRY_AFTER),
        Some(&HeaderValue::from_static("1"))
    );
    assert_eq!(files.serve(&request("HEAD")).await.status(), 200);
    // One taken whole: its place is free again.
    let body = first.into_body().collect().await.map(|c| c.to_bytes());
    assert_eq!(body.unwrap_or_default(), "console.log(1)");
    assert_eq!(files.serve(&request("GET")).await.status(), 200);
    // One dropped unread (the client went away): the same.
    drop(second);
    assert_eq!(files.serve(&request("GET")).await.status(), 200);
    Ok(())
}

#[test]
fn url_paths_become_plain_relative_paths() {
    let plain = |path: &str, dir_url| {
        Some(Wanted {
            path: PathBuf::from(path),
            dir_url,
        })
    };
    assert_eq!(wanted("/"), plain("", true));
    assert_eq!(wanted("/a/b.js"), plain("a/b.js", false));
    assert_eq!(wanted("//a//b/"), plain("a/b", true));
    assert_eq!(wanted("/a%20b"), plain("a b", false));
    for bad in [
        "/..",
        "/a/../b",
        "/.git/config",
        "/a%2fb",
        "/a%5cb",
        "/%00",
        "relative",
    ] {
        assert_eq!(wanted(bad), None, "{bad}");
    }
}
