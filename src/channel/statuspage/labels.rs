//! The status page's built-in text in every [`Locale`]: one table, handed to the templates as
//! `labels.*`, so a translation is one column here and the templates stay overridable by name.

use serde_json::{Map, Value, json};

use crate::announcement::Severity;
use crate::locale::Locale;

/// (key, German, English). Keys with a dot go into a nested object (`severity.major`), so a
/// template can write `{{lookup labels.severity severity}}`.
const LABELS: &[(&str, &str, &str)] = &[
    ("title", "Aktueller Status", "Current status"),
    ("skip", "Zum Inhalt springen", "Skip to content"),
    ("nav", "Seiten", "Pages"),
    ("current_incidents", "Aktuelle Störungen", "Current incidents"),
    ("notices", "Hinweise", "Notices"),
    ("recently_resolved", "Kürzlich behoben", "Recently resolved"),
    (
        "earlier",
        "Frühere Störungen und Hinweise",
        "Earlier incidents and notices",
    ),
    (
        "banner_ok",
        "Keine aktuellen Störungen: alles funktioniert normal.",
        "No current disruptions: everything is working normally.",
    ),
    (
        "banner_critical",
        "Es besteht eine kritische Störung.",
        "A critical incident is ongoing.",
    ),
    (
        "banner_disruption",
        "Wir arbeiten an einer aktuellen Störung.",
        "We are working on a current disruption.",
    ),
    ("updated", "Aktualisiert", "Updated"),
    ("last_update", "Letzte Meldung", "Last update"),
    ("started", "Begonnen", "Started"),
    ("ongoing", "Andauernd", "Ongoing"),
    ("closed", "Abgeschlossen", "Closed"),
    ("updates", "Meldungen, neueste zuerst", "Updates, newest first"),
    ("all_updates", "Alle Meldungen", "All updates"),
    ("more_information", "Weitere Informationen", "More information"),
    ("overview", "Alle Störungen", "All incidents"),
    ("times_in", "Zeiten in", "Times in"),
    ("feed", "Atom-Feed", "Atom feed"),
    ("contact", "Kontakt", "Contact"),
    ("phone", "Telefon", "Phone"),
    ("email", "E-Mail", "Email"),
    ("address", "Adresse", "Address"),
    ("hours", "Erreichbar", "Opening hours"),
    ("website", "Website", "Website"),
    ("severity.critical", "Kritisch", "Critical"),
    ("severity.major", "Größere Störung", "Major disruption"),
    ("severity.minor", "Kleinere Störung", "Minor disruption"),
    ("severity.info", "Hinweis", "Notice"),
    ("severity.resolved", "Behoben", "Resolved"),
    // The JSON API's `status.description` for each indicator (Statuspage's wording in English).
    ("status.none", "Alle Systeme funktionieren", "All Systems Operational"),
    ("status.minor", "Kleinere Störung", "Minor Service Outage"),
    ("status.major", "Teilweise Störung", "Partial System Outage"),
    ("status.critical", "Schwere Störung", "Major Service Outage"),
];

fn text(locale: Locale, de: &'static str, en: &'static str) -> &'static str {
    match locale {
        Locale::De => de,
        Locale::En => en,
    }
}

/// One label (`"severity.major"`), for Rust code such as the JSON API.
pub fn label(locale: Locale, key: &str) -> &'static str {
    LABELS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or("", |(_, de, en)| text(locale, de, en))
}

/// The label of a severity.
pub fn severity(locale: Locale, s: Severity) -> &'static str {
    label(locale, &format!("severity.{}", s.as_str()))
}

/// Every label, for the templates' `labels`.
pub fn all(locale: Locale) -> Value {
    let mut root = Map::new();
    for (key, de, en) in LABELS {
        let value = json!(text(locale, de, en));
        match key.split_once('.') {
            Some((group, name)) => {
                let group = root.entry(group.to_string()).or_insert_with(|| json!({}));
                if let Value::Object(g) = group {
                    g.insert(name.to_string(), value);
                }
            }
            None => {
                root.insert(key.to_string(), value);
            }
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_in_every_language_and_keys_are_unique() {
        let keys: std::collections::BTreeSet<&str> = LABELS.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys.len(), LABELS.len());
        for (k, de, en) in LABELS {
            assert!(!de.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(all(Locale::De)["severity"]["major"], "Größere Störung");
        assert_eq!(all(Locale::En)["current_incidents"], "Current incidents");
        assert_eq!(severity(Locale::En, Severity::Resolved), "Resolved");
    }
}
