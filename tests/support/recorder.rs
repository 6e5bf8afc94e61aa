//! The one recording wiremock responder: it keeps every request with the wall-clock time it
//! arrived, and answers from a script, a fixed answer, or a closure of (request number, request).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

type Answer = dyn Fn(usize, &Request) -> ResponseTemplate + Send + Sync;
type Until = dyn Fn(SystemTime) -> SystemTime + Send + Sync;

#[derive(Clone)]
pub struct Recorder {
    log: Arc<Mutex<Vec<(SystemTime, Request)>>>,
    answer: Arc<Answer>,
    /// `holding`: when the first answer stops holding, and that answer with its time.
    hold: Option<Arc<Until>>,
    first: Arc<Mutex<Option<(SystemTime, ResponseTemplate)>>>,
}

impl Recorder {
    /// Answers with `script` in order, then `fallback` forever.
    pub fn new(script: Vec<ResponseTemplate>, fallback: ResponseTemplate) -> Recorder {
        let script = Mutex::new(VecDeque::from(script));
        Recorder::answering(move |_, _| script.lock().unwrap().pop_front().unwrap_or_else(|| fallback.clone()))
    }

    pub fn always(r: ResponseTemplate) -> Recorder {
        Recorder::new(Vec::new(), r)
    }

    /// Answers request number `n` (from 1) with `answer(n, request)`.
    pub fn answering(answer: impl Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static) -> Recorder {
        Recorder {
            log: Arc::default(),
            answer: Arc::new(answer),
            hold: None,
            first: Arc::default(),
        }
    }

    /// A receiver that means its first answer's Retry-After (or rate-limit reset): until
    /// `until(time of the first request)` every request gets that answer again. A client
    /// that came too early makes more requests, so tests assert the count, not the spacing.
    pub fn holding(mut self, until: impl Fn(SystemTime) -> SystemTime + Send + Sync + 'static) -> Recorder {
        self.hold = Some(Arc::new(until));
        self
    }

    /// A server that answers every request with `answer(request)`, and its recorder.
    pub async fn serving(
        answer: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
    ) -> (MockServer, Recorder) {
        let recorder = Recorder::answering(move |_, r| answer(r));
        (recorder.serve().await, recorder)
    }

    /// A server on which only requests to `path` are answered by `answer(n, request)` (and
    /// recorded); anything else gets wiremock's 404.
    pub async fn serving_path(
        path: &str,
        answer: impl Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static,
    ) -> (MockServer, Recorder) {
        let server = MockServer::start().await;
        let recorder = Recorder::answering(answer);
        Mock::given(wiremock::matchers::path(path))
            .respond_with(recorder.clone())
            .mount(&server)
            .await;
        (server, recorder)
    }

    /// A server on which this recorder answers every POST (to `path`, if given); anything
    /// else gets wiremock's 404.
    pub async fn serve_posts(&self, path: Option<&str>) -> MockServer {
        let server = MockServer::start().await;
        let mock = Mock::given(wiremock::matchers::method("POST"));
        let mock = match path {
            Some(p) => mock.and(wiremock::matchers::path(p)),
            None => mock,
        };
        mock.respond_with(self.clone()).mount(&server).await;
        server
    }

    /// Answers the requests on `server` that `matcher` takes (several recorders share it).
    pub async fn mount_on(&self, server: &MockServer, matcher: impl wiremock::Match + 'static) {
        Mock::given(matcher).respond_with(self.clone()).mount(server).await;
    }

    /// A server that answers every request with this recorder.
    pub async fn serve(&self) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(self.clone())
            .mount(&server)
            .await;
        server
    }

    pub fn requests(&self) -> Vec<(SystemTime, Request)> {
        self.log.lock().unwrap().clone()
    }

    pub fn received(&self) -> Vec<Request> {
        self.log.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn paths(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.url.path().to_string())
            .collect()
    }
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = SystemTime::now();
        let n = {
            let mut log = self.log.lock().unwrap();
            log.push((now, request.clone()));
            log.len()
        };
        let Some(until) = &self.hold else {
            return (self.answer)(n, request);
        };
        let mut first = self.first.lock().unwrap();
        match &*first {
            Some((at, held)) if now < until(*at) => held.clone(),
            Some(_) => (self.answer)(n, request),
            None => {
                let answer = (self.answer)(n, request);
                *first = Some((now, answer.clone()));
                answer
            }
        }
    }
}
