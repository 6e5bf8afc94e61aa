//! Facebook Page and Instagram channels through the binary, against a local Graph fake
//! (tests/support/graph_fake.rs) that follows the documented contract.

use crate::support;
use crate::support::graph_fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_fake::{Endpoint, FB_SECRET, FB_TOKEN, FakeError, GraphFake, IG_ID, IG_TOKEN, PAGE_ID, Recorded, proof};
use support::scenario::{NOTICE, SEND, notice_text};
use support::{NO_ENV, Scenario, Workspace, assert_outcome};

const JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 1, 2, 3, 4, 5, 0xFF, 0xD9,
];

fn facebook_block(uri: &str, extra: &str) -> String {
    format!(
        "[channels.facebook]\ntype = \"facebook\"\npage_id = \"{PAGE_ID}\"\naccess_token_env = \"FB_PAGE_TOKEN\"\n\
         app_secret_env = \"FB_APP_SECRET\"\ngraph_url = \"{uri}\"\napi_version = \"v26.0\"\nretry_base = \"10ms\"\n\
         retry_max = \"50ms\"\nthrottle_wait = \"50ms\"\n{extra}\n"
    )
}

fn instagram_block(uri: &str, extra: &str) -> String {
    format!(
        "[channels.instagram]\ntype = \"instagram\"\nig_user_id = \"{IG_ID}\"\naccess_token_env = \"IG_ACCESS_TOKEN\"\n\
         graph_url = \"{uri}\"\napi_version = \"v26.0\"\nretry_base = \"10ms\"\nretry_max = \"50ms\"\n\
         throttle_wait = \"50ms\"\npoll_interval = \"50ms\"\npoll_timeout = \"5s\"\n{extra}\n"
    )
}

const TITLE: &str = "Website vorübergehend gestört";

/// A folder with only the given channel blocks and no audience (broadcasts need none), the
/// Graph secrets set (no run may print them) and the announcement's title.
fn graph(blocks: &[String]) -> Scenario {
    Scenario::new()
        .org("name = \"Sarah Kastner Fotografie\"\nphone = \"+49 30 1234567\"\nlocale = \"de\"")
        .channel(&blocks.concat())
        .title(TITLE)
        .secret("FB_PAGE_TOKEN", FB_TOKEN)
        .secret("FB_APP_SECRET", FB_SECRET)
        .secret("IG_ACCESS_TOKEN", IG_TOKEN)
}

/// The announcement's summary and front matter lines `extra` (channels, image, link...).
fn front(extra: &str) -> String {
    format!("summary = \"Alle Termine finden statt.\"\n{extra}")
}

const BODY: &str = "Unsere **Website** ist offline. Fragen: 030 1234567";

/// An announcement for the Facebook channel alone, its block at `uri` with `extra` (a
/// `throttle_wait` there replaces the block's own).
fn facebook_post(uri: &str, extra: &str) -> Scenario {
    let mut block = facebook_block(uri, extra);
    if extra.contains("throttle_wait") {
        block = block.replace("throttle_wait = \"50ms\"\n", "");
    }
    graph(&[block]).notice(&front("channels = [\"facebook\"]"), BODY)
}

/// An announcement of `image` for the Instagram channel alone.
fn instagram_post(fake: &GraphFake, image: &str) -> Scenario {
    graph(&[instagram_block(&fake.uri(), "")]).notice(
        &front(&format!("channels = [\"instagram\"]\nimage = \"{image}\"")),
        BODY,
    )
}

/// Every request authenticated with the right Bearer token, and no secret in any URL.
fn assert_auth(reqs: &[Recorded]) {
    for r in reqs {
        for s in [FB_TOKEN, IG_TOKEN, FB_SECRET] {
            assert!(!r.url.contains(s), "secret in URL {}", r.url);
        }
        assert!(!r.query.contains_key("access_token") && !r.body.contains_key("access_token"));
        let page_call = matches!(
            r.endpoint,
            Endpoint::Feed | Endpoint::Photos | Endpoint::GetPhoto | Endpoint::GetPage
        );
        let token = if page_call { FB_TOKEN } else { IG_TOKEN };
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {token}").as_str()),
            "{r:?}"
        );
        if page_call {
            assert_eq!(
                r.param("appsecret_proof"),
                Some(proof(FB_SECRET, FB_TOKEN).as_str()),
                "{r:?}"
            );
        } else {
            assert_eq!(
                r.param("appsecret_proof"),
                None,
                "instagram has no app secret configured"
            );
        }
        assert!(r.path.starts_with("/v26.0/"), "{}", r.path);
    }
}

fn endpoints(reqs: &[Recorded]) -> Vec<Endpoint> {
    reqs.iter().map(|r| r.endpoint).collect()
}

fn keys(r: &Recorded) -> Vec<&str> {
    r.body.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn facebook_text_post_sends_exactly_the_documented_request() {
    let fake = GraphFake::start().await;
    let (w, r) = graph(&[facebook_block(&fake.uri(), "")])
        .notice(
            &front("channels = [\"facebook\"]\nlink = \"https://status.example.de\""),
            BODY,
        )
        .send_async()
        .await;
    r.code(0);
    let d = r.delivery_on("facebook");
    assert_eq!(d["recipient"], PAGE_ID);
    assert_eq!(d["status"], "sent");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["provider_id"], format!("{PAGE_ID}_1"));
    assert!(
        d["route"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v26.0/{PAGE_ID}/feed")),
        "{d}"
    );

    let reqs = fake.requests();
    assert_eq!(endpoints(&reqs), [Endpoint::Feed]);
    let p = &reqs[0];
    assert_eq!((p.method.as_str(), p.path.as_str()), ("POST", "/v26.0/1234567890/feed"));
    assert!(
        p.content_type.starts_with("application/x-www-form-urlencoded"),
        "{}",
        p.content_type
    );
    assert!(p.query.is_empty(), "nothing in the query string: {}", p.url);
    assert_eq!(keys(p), ["appsecret_proof", "link", "message"]);
    assert_eq!(p.param("link"), Some("https://status.example.de"));
    let msg = p.param("message").unwrap();
    assert!(
        msg.starts_with("Website vorübergehend gestört\n\nAlle Termine finden statt."),
        "{msg}"
    );
    assert!(
        msg.contains("Unsere Website ist offline.") && msg.contains("Telefon: +49 30 1234567"),
        "{msg}"
    );
    assert_ne!(p.param("appsecret_proof"), Some(FB_TOKEN));
    assert_auth(&reqs);
    w.assert_secrets_absent();
}

#[tokio::test(flavor = "multi_thread")]
async fn facebook_photo_post_from_an_image_url_reports_the_post_id() {
    let fake = GraphFake::start().await;
    let (_w, r) = graph(&[facebook_block(&fake.uri(), "")])
        .notice(&front("channels = [\"facebook\"]\nlink = \"https://status.example.de\"\nimage = \"https://cdn.example.de/notice.jpg\""), BODY).send_async().await;
    r.code(0);
    let reqs = fake.requests();
    assert_eq!(endpoints(&reqs), [Endpoint::Photos]);
    let p = &reqs[0];
    assert_eq!(p.path, "/v26.0/1234567890/photos");
    assert!(p.content_type.starts_with("application/x-www-form-urlencoded"));
    assert_eq!(keys(p), ["appsecret_proof", "caption", "url"]);
    assert_eq!(p.param("url"), Some("https://cdn.example.de/notice.jpg"));
    let caption = p.param("caption").unwrap();
    assert!(caption.starts_with("Website vorübergehend gestört"), "{caption}");
    assert!(
        caption.contains("https://status.example.de"),
        "a photo post carries the link in its caption: {caption}"
    );
    // {"id": photo, "post_id": page_post}: the report names the post.
    let d = r.delivery_on("facebook");
    assert_eq!(d["provider_id"], format!("{PAGE_ID}_1"));
    assert_auth(&reqs);
}

#[tokio::test(flavor = "multi_thread")]
async fn facebook_photo_post_uploads_a_local_file_as_multipart_source() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), "")])
        .notice(&front("channels = [\"facebook\"]\nimage = \"pics/notice.jpg\""), BODY)
        .build();
    std::fs::create_dir_all(w.path("notices/pics")).unwrap();
    std::fs::write(w.path("notices/pics/notice.jpg"), JPEG).unwrap();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(0);
    let reqs = fake.requests();
    assert_eq!(endpoints(&reqs), [Endpoint::Photos]);
    let p = &reqs[0];
    assert!(
        p.content_type.starts_with("multipart/form-data; boundary="),
        "{}",
        p.content_type
    );
    assert_eq!(keys(p), ["appsecret_proof", "caption"], "no url for an upload");
    assert_eq!(p.files.len(), 1);
    let f = &p.files[0];
    assert_eq!(f.name, "source");
    assert_eq!(f.file_name.as_deref(), Some("notice.jpg"));
    assert_eq!(f.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(f.bytes, JPEG);
    assert!(p.param("caption").unwrap().contains("Unsere Website ist offline."));
    assert_eq!(r.delivery_on("facebook")["provider_id"], format!("{PAGE_ID}_1"));
    assert_auth(&reqs);
}

#[tokio::test(flavor = "multi_thread")]
async fn instagram_post_goes_through_the_whole_container_flow() {
    let fake = GraphFake::start().await;
    fake.spacing(
        Endpoint::GetContainer,
        &[Duration::from_millis(50), Duration::from_millis(100)],
    );
    let (_w, r) = graph(&[instagram_block(&fake.uri(), "")])
        .notice(&front("channels = [\"instagram\"]\nimage = \"https://cdn.example.de/notice.jpg\"\n[vars]\nimage_alt = \"Schild an der Studiotür\""), BODY).send_async().await;
    r.code(0);
    let reqs = fake.requests();
    use Endpoint::*;
    assert_eq!(
        endpoints(&reqs),
        [
            PublishingLimit,
            Media,
            GetContainer,
            GetContainer,
            GetContainer,
            MediaPublish
        ]
    );
    let limit = &reqs[0];
    assert_eq!(
        (limit.method.as_str(), limit.path.as_str()),
        ("GET", format!("/v26.0/{IG_ID}/content_publishing_limit").as_str())
    );
    assert_eq!(limit.param("fields"), Some("config,quota_usage"));
    let media = &reqs[1];
    assert_eq!(
        (media.method.as_str(), media.path.as_str()),
        ("POST", format!("/v26.0/{IG_ID}/media").as_str())
    );
    assert!(media.content_type.starts_with("application/x-www-form-urlencoded"));
    assert_eq!(keys(media), ["alt_text", "caption", "image_url"]);
    assert_eq!(media.param("image_url"), Some("https://cdn.example.de/notice.jpg"));
    assert_eq!(media.param("alt_text"), Some("Schild an der Studiotür"));
    assert!(
        media
            .param("caption")
            .unwrap()
            .starts_with("Website vorübergehend gestört")
    );
    let container = "1780002"; // the fake's id for the second request
    for poll in &reqs[2..5] {
        assert_eq!(poll.method, "GET");
        assert_eq!(poll.path, format!("/v26.0/{container}"));
        assert_eq!(poll.param("fields"), Some("status_code,status"));
    }
    // Backing off: the second wait is at least twice poll_interval.
    assert_eq!(fake.too_soon(GetContainer), 0, "polled without backing off");
    let publish = &reqs[5];
    assert_eq!(publish.path, format!("/v26.0/{IG_ID}/media_publish"));
    assert_eq!(keys(publish), ["creation_id"]);
    assert_eq!(publish.param("creation_id"), Some(container));
    let d = r.delivery_on("instagram");
    assert_eq!(
        (d["status"].as_str(), d["recipient"].as_str()),
        (Some("sent"), Some(IG_ID))
    );
    assert_eq!(d["provider_id"], "1790006");
    assert_auth(&reqs);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_image_is_hosted_via_an_unpublished_facebook_photo_then_posted_on_instagram() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), ""), instagram_block(&fake.uri(), "")])
        .notice(&front("channels = [\"instagram\"]\nimage = \"notice.jpg\""), BODY)
        .build();
    std::fs::write(w.path("notices/notice.jpg"), JPEG).unwrap();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(0);
    let reqs = fake.requests();
    use Endpoint::*;
    assert_eq!(
        endpoints(&reqs),
        [
            PublishingLimit,
            Photos,
            GetPhoto,
            Media,
            GetContainer,
            GetContainer,
            GetContainer,
            MediaPublish
        ],
        "no public Facebook post"
    );
    let upload = &reqs[1];
    assert!(upload.content_type.starts_with("multipart/form-data"));
    assert_eq!(keys(upload), ["appsecret_proof", "published"]);
    assert_eq!(upload.param("published"), Some("false"));
    assert_eq!(upload.files.len(), 1);
    assert_eq!(
        (upload.files[0].name.as_str(), upload.files[0].bytes.as_slice()),
        ("source", JPEG)
    );
    let photo = "900002";
    assert_eq!(reqs[2].path, format!("/v26.0/{photo}"));
    assert_eq!(reqs[2].param("fields"), Some("images"));
    // The largest rendition, whatever its position in `images`.
    assert_eq!(
        reqs[3].param("image_url"),
        Some(format!("https://scontent.fake.example/o1440/{photo}.jpg").as_str())
    );
    let report = r.json();
    assert_eq!(report["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(r.delivery_on("instagram")["status"], "sent");
    assert_auth(&reqs);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_image_without_a_facebook_channel_is_refused_at_validation() {
    let fake = GraphFake::start().await;
    let w = instagram_post(&fake, "notice.jpg").build();
    std::fs::write(w.path("notices/notice.jpg"), JPEG).unwrap();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(2).stderr_has("Instagram needs a public https URL");
    assert!(fake.requests().is_empty());
    assert!(!w.path(".announce/journal.sqlite3").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_announcement_without_an_image_skips_instagram_with_the_reason() {
    let fake = GraphFake::start().await;
    let (_w, r) = graph(&[facebook_block(&fake.uri(), ""), instagram_block(&fake.uri(), "")])
        .notice(&front("channels = [\"facebook\", \"instagram\"]"), BODY)
        .send_async()
        .await;
    r.code(0);
    let ig = r.delivery_on("instagram");
    assert_eq!(ig["status"], "skipped");
    assert!(ig["error"].as_str().unwrap().contains("need an image"), "{ig}");
    assert_eq!(r.delivery_on("facebook")["status"], "sent");
    assert_eq!(
        endpoints(&fake.requests()),
        [Endpoint::Feed],
        "nothing was sent to Instagram"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_fails_at_once_with_renewal_advice() {
    let fake = GraphFake::start().await;
    fake.fail(
        Endpoint::Feed,
        5,
        FakeError::new(
            190,
            Some(463),
            "Error validating access token: Session has expired on Friday, 06-Nov-26 09:00:00 PST.",
        ),
    );
    let (_w, r) = facebook_post(&fake.uri(), "").send_async().await;
    r.code(3);
    let d = r.delivery_on("facebook");
    assert_outcome(&d, "failed", 1);
    let e = d["error"].as_str().unwrap();
    assert!(e.contains("the access token expired") && e.contains("190/463"), "{e}");
    assert!(
        e.contains("create a new Page access token") && e.contains("FB_PAGE_TOKEN"),
        "{e}"
    );
    assert_eq!(fake.of(Endpoint::Feed).len(), 1, "no retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_code_4_with_app_usage_at_100_percent_is_retried_after_waiting() {
    let fake = GraphFake::start().await;
    fake.fail(
        Endpoint::Feed,
        1,
        FakeError::new(4, None, "(#4) Application request limit reached").header(
            "x-app-usage",
            r#"{"call_count":100,"total_time":41,"total_cputime":12}"#,
        ),
    );
    fake.spacing(Endpoint::Feed, &[Duration::from_millis(1500)]);
    let w = facebook_post(&fake.uri(), "throttle_wait = \"1500ms\"").build();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(0);
    let d = r.delivery_on("facebook");
    assert_outcome(&d, "sent", 2);
    assert_eq!(fake.of(Endpoint::Feed).len(), 2);
    // retry_base is 10ms: only the usage header makes it wait throttle_wait.
    assert_eq!(fake.too_soon(Endpoint::Feed), 0, "retried before throttle_wait");
}

#[tokio::test(flavor = "multi_thread")]
async fn posting_too_fast_368_is_retried_a_bounded_number_of_times() {
    let fake = GraphFake::start().await;
    fake.fail(
        Endpoint::Feed,
        10,
        FakeError::new(
            368,
            Some(1390008),
            "It looks like you were misusing this feature by going too fast.",
        ),
    );
    fake.spacing(Endpoint::Feed, &[Duration::from_millis(200)]);
    // max_attempts is the default (5); 368 stops earlier.
    let w = facebook_post(&fake.uri(), "throttle_wait = \"200ms\"").build();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(3);
    let d = r.delivery_on("facebook");
    assert_outcome(&d, "failed", 3);
    let e = d["error"].as_str().unwrap();
    assert!(e.contains("368/1390008") && e.contains("posting too fast"), "{e}");
    assert_eq!(fake.of(Endpoint::Feed).len(), 3);
    assert_eq!(fake.too_soon(Endpoint::Feed), 0, "retried before throttle_wait");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_in_error_fails_with_the_reason() {
    let fake = GraphFake::start().await;
    fake.container_script(&[
        ("IN_PROGRESS", "In Progress"),
        ("ERROR", "Error: The aspect ratio is not supported. (2207009)"),
    ]);
    let (_w, r) = instagram_post(&fake, "https://cdn.example.de/wide.jpg")
        .send_async()
        .await;
    r.code(3);
    let d = r.delivery_on("instagram");
    assert_outcome(&d, "failed", 1);
    let e = d["error"].as_str().unwrap();
    assert!(
        e.contains("ERROR") && e.contains("The aspect ratio is not supported. (2207009)"),
        "{e}"
    );
    assert!(fake.of(Endpoint::MediaPublish).is_empty());
    assert_eq!(fake.of(Endpoint::GetContainer).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_container_is_not_published() {
    let fake = GraphFake::start().await;
    fake.container_script(&[("EXPIRED", "Expired: the container was not published within 24 hours")]);
    let (_w, r) = instagram_post(&fake, "https://cdn.example.de/n.jpg").send_async().await;
    r.code(3);
    let d = r.delivery_on("instagram");
    assert_eq!(d["status"], "failed");
    assert!(d["error"].as_str().unwrap().contains("EXPIRED"), "{d}");
    assert!(fake.of(Endpoint::MediaPublish).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_publishing_limit_is_refused_politely_before_anything_is_created() {
    let fake = GraphFake::start().await;
    fake.quota(50, 50);
    let (_w, r) = instagram_post(&fake, "https://cdn.example.de/n.jpg").send_async().await;
    r.code(3);
    let d = r.delivery_on("instagram");
    assert_outcome(&d, "failed", 1);
    let e = d["error"].as_str().unwrap();
    assert!(
        e.contains("publishing limit is used up (50 of 50 posts in the last 24 hours)"),
        "{e}"
    );
    assert_eq!(endpoints(&fake.requests()), [Endpoint::PublishingLimit]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_publishing_limit_error_at_media_publish_is_permanent() {
    let fake = GraphFake::start().await;
    fake.quota(49, 50).fail(
        Endpoint::MediaPublish,
        1,
        FakeError::new(9, Some(2207042), "Application request limit reached"),
    );
    fake.container_script(&[("FINISHED", "Finished")]);
    let (_w, r) = instagram_post(&fake, "https://cdn.example.de/n.jpg").send_async().await;
    r.code(3);
    let d = r.delivery_on("instagram");
    assert_outcome(&d, "failed", 1);
    assert!(d["error"].as_str().unwrap().contains("publishing limit"), "{d}");
    assert_eq!(fake.of(Endpoint::MediaPublish).len(), 1);
}

/// Acceptance 4: the process dies while the feed POST is in flight (Graph got it, the journal
/// never learnt the result).
#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_after_the_feed_post_is_unknown_on_resume_and_not_reposted() {
    let fake = GraphFake::start().await;
    fake.delay(Endpoint::Feed, Duration::from_secs(30));
    let w = facebook_post(&fake.uri(), "").build();
    let mut cmd = w.command();
    cmd.args(["send", "notices/n.md", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.of(Endpoint::Feed).is_empty() {
        assert!(Instant::now() < deadline, "the POST never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL while Graph is still answering
    child.wait().unwrap();
    let run_id = w.journal().latest_run_id().unwrap().unwrap();
    let status = w.journal().deliveries(&run_id).unwrap()[0].status.as_str().to_string();
    assert_eq!(status, "sending", "killed before the journal recorded the result");

    let r = w.run_async(&["resume", &run_id, "--yes", "--json"], NO_ENV).await;
    r.code(3);
    let d = r.delivery_on("facebook");
    assert_eq!(d["status"], "unknown", "{d}");
    // A second resume does not post it either.
    w.run_async(&["resume", &run_id, "--yes", "--json"], NO_ENV).await;
    assert_eq!(fake.of(Endpoint::Feed).len(), 1, "never re-posted");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_cut_off_after_the_post_was_sent_is_unknown_not_retried() {
    let fake = GraphFake::start().await;
    fake.delay(Endpoint::Feed, Duration::from_secs(10));
    let (_w, r) = facebook_post(&fake.uri(), "timeout = \"1s\"").send_async().await;
    r.code(3);
    let d = r.delivery_on("facebook");
    assert_outcome(&d, "unknown", 1);
    assert!(
        d["error"]
            .as_str()
            .unwrap()
            .contains("may or may not have been published"),
        "{d}"
    );
    assert_eq!(fake.of(Endpoint::Feed).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_is_transient_and_retried() {
    // Nothing listens there: the request never reaches Graph, so retrying is safe.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_w, r) = facebook_post(&format!("http://127.0.0.1:{port}"), "max_attempts = 2")
        .send_async()
        .await;
    r.code(3);
    let d = r.delivery_on("facebook");
    assert_outcome(&d, "failed", 2);
    assert!(d["error"].as_str().unwrap().contains("gave up after 2 attempts"), "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caption_with_31_hashtags_is_refused_before_anything_is_sent() {
    let fake = GraphFake::start().await;
    let tags: Vec<String> = (1..=31).map(|i| format!("#tag{i}")).collect();
    let (w, r) = graph(&[facebook_block(&fake.uri(), ""), instagram_block(&fake.uri(), "")])
        .notice(
            &front("channels = [\"facebook\", \"instagram\"]\nimage = \"https://cdn.example.de/n.jpg\""),
            &format!("{BODY}\n\n{}", tags.join(" ")),
        )
        .send_async()
        .await;
    r.code(2).stderr_has("31 hashtags (max 30)");
    assert!(fake.requests().is_empty(), "nothing was sent, not even to Facebook");
    assert!(!w.path(".announce/journal.sqlite3").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_facebook_post_over_the_length_limit_is_refused() {
    let fake = GraphFake::start().await;
    let (_w, r) = graph(&[facebook_block(&fake.uri(), "")])
        .notice(&front("channels = [\"facebook\"]"), &"Sehr lang. ".repeat(6000))
        .send_async()
        .await;
    r.code(2).stderr_has("Facebook allows 63206");
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_shows_caption_and_post_lengths_without_calling_graph() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), ""), instagram_block(&fake.uri(), "")])
        .notice(
            &front(
                "channels = [\"facebook\", \"instagram\"]\nimage = \"https://cdn.example.de/n.jpg\"\n\
                 [vars]\nimage_alt = \"Schild an der Studiotür\"",
            ),
            &format!("{BODY}\n\n#studio #fotografie #berlin danke @sarahkastner.foto"),
        )
        .build();
    let r = w.run_async(&["preview", "notices/n.md"], NO_ENV).await;
    r.code(0);
    let out = r.stdout();
    let text = "Website vorübergehend gestört\n\nAlle Termine finden statt.\n\nUnsere Website ist offline. Fragen: 030 \
                1234567\n\n#studio #fotografie #berlin danke @sarahkastner.foto\n\nTelefon: +49 30 1234567";
    let n = text.chars().count();
    assert!(out.contains(&format!("post characters: {n} / 63206")), "{out}");
    assert!(out.contains(&format!("caption characters: {n} / 2200")), "{out}");
    assert!(out.contains("hashtags: 3 / 30"), "{out}");
    assert!(out.contains("mentions: 1 / 20"), "{out}");
    // What the posts carry comes after the lengths, once per channel.
    assert!(
        out.contains("  post type: photo (from the image URL)\n  image: https://cdn.example.de/n.jpg\n\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  mentions: 1 / 20\n  image: https://cdn.example.de/n.jpg\n  alt text: Schild an der Studiotür\n\n"
        ),
        "{out}"
    );
    assert_eq!(out.matches("image: https://cdn.example.de/n.jpg").count(), 2, "{out}");
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_probes_page_and_account_without_posting() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), ""), instagram_block(&fake.uri(), "")]).build();
    let r = w.run_async(&["check"], NO_ENV).await;
    r.code(0);
    let out = r.stdout();
    assert!(
        out.contains("Sarah Kastner Fotografie") && out.contains("@sarahkastner.foto"),
        "{out}"
    );
    let reqs = fake.requests();
    assert!(reqs.iter().all(|r| r.method == "GET"), "check only reads");
    let page = reqs.iter().find(|r| r.endpoint == Endpoint::GetPage).unwrap();
    assert_eq!(page.param("fields"), Some("id,name"));
    let ig = reqs.iter().find(|r| r.endpoint == Endpoint::GetIgUser).unwrap();
    assert_eq!(ig.param("fields"), Some("id,username"));
    assert_auth(&reqs);

    // An expired token is reported clearly.
    fake.fail(
        Endpoint::GetPage,
        1,
        FakeError::new(190, Some(463), "Error validating access token: Session has expired"),
    );
    let r = w.run_async(&["check", "--channel", "facebook"], NO_ENV).await;
    r.code(1);
    assert!(r.stdout().contains("the access token expired"), "{}", r.describe());
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_rejected_by_the_fake_with_the_190_envelope() {
    // The fake really checks auth: a token it does not know gets 190, which fails permanently.
    let fake = GraphFake::start().await;
    let w = facebook_post(&fake.uri(), "").build();
    let r = w
        .run_async(
            SEND,
            &[("FB_PAGE_TOKEN", "not-a-valid-token"), ("FB_APP_SECRET", FB_SECRET)],
        )
        .await;
    r.code(3);
    let d = r.delivery_on("facebook");
    assert_outcome(&d, "failed", 1);
    assert!(d["error"].as_str().unwrap().contains("Graph error 190"), "{d}");
    assert!(!r.stdout().contains("not-a-valid-token") && !r.stderr().contains("not-a-valid-token"));
}

/// A Facebook post whose `image` is `image`: refused while planning with `expect` in the
/// message, exit 2, and not one request reaches Graph.
async fn image_refused(w: &Arc<Workspace>, fake: &GraphFake, image: &str, expect: &str) {
    let front = front(&format!("channels = [\"facebook\"]\nimage = {}", toml_str(image)));
    w.write(NOTICE, &notice_text(TITLE, &front, BODY));
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(2).stderr_has(expect).stderr_has("nothing was sent");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    assert!(!w.path(".announce/journal.sqlite3").exists());
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_images_outside_the_announcement_and_working_folders_are_never_uploaded() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), "")]).build();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("photo.jpg");
    std::fs::write(&outside, JPEG).unwrap();
    let outside = outside.display().to_string();
    image_refused(
        &w,
        &fake,
        &outside,
        "outside the announcement's folder and the working folder",
    )
    .await;
    image_refused(&w, &fake, "/etc/passwd", "outside the announcement's folder").await;
    // A symlink inside the folder that points out of it is judged by its target.
    std::fs::create_dir_all(w.path("notices")).unwrap();
    std::os::unix::fs::symlink(&outside, w.path("notices/link.jpg")).unwrap();
    image_refused(&w, &fake, "link.jpg", "outside the announcement's folder").await;
    // The same file inside the working folder is fine: the rule is about where, not what.
    std::fs::write(w.path("photo.jpg"), JPEG).unwrap();
    let notice = notice_text(
        TITLE,
        &front("channels = [\"facebook\"]\nimage = \"../photo.jpg\""),
        BODY,
    );
    w.write(NOTICE, &notice);
    w.run_async(SEND, NO_ENV).await.code(0);
    assert_eq!(endpoints(&fake.requests()), [Endpoint::Photos]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_is_not_an_image_or_too_big_is_refused_by_its_content() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), "")]).build();
    w.write("customers.jpg", "name,email\nAnna,anna@example.de\n");
    image_refused(&w, &fake, "../customers.jpg", "is not a JPEG, PNG, GIF or WebP file").await;
    w.write("notices/journal.png", "SQLite format 3\0rest of the journal");
    image_refused(&w, &fake, "journal.png", "is not a JPEG, PNG, GIF or WebP file").await;
    let mut big = JPEG.to_vec();
    big.resize((4 << 20) + 1, 0);
    std::fs::write(w.path("notices/big.jpg"), &big).unwrap();
    image_refused(&w, &fake, "big.jpg", "Facebook takes images of at most 4 MB").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instagram_takes_only_jpeg_local_images() {
    let fake = GraphFake::start().await;
    let w = graph(&[facebook_block(&fake.uri(), ""), instagram_block(&fake.uri(), "")])
        .notice(&front("channels = [\"instagram\"]\nimage = \"logo.png\""), BODY)
        .build();
    std::fs::create_dir_all(w.path("notices")).unwrap();
    std::fs::write(w.path("notices/logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(2).stderr_has("is a PNG file; Instagram takes only JPEG");
    assert!(fake.requests().is_empty());
}
