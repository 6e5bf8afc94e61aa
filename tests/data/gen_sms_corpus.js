#!/usr/bin/env node
// Generates tests/data/sms_corpus.json: SMS encoding / length / segment-count
// expectations produced by an INDEPENDENT third-party implementation, used by
// the corpus test in src/render/sms.rs.
//
// Library: sms-segments-calculator 1.3.0 (npm; Twilio's "Messaging Segment
//          Calculator", github.com/TwilioDevEd/message-segment-calculator),
//          with its dependency grapheme-splitter 1.0.4. Generated with Node 20.
//
// Re-run (from the repository root):
//   mkdir -p /tmp/smscalc && (cd /tmp/smscalc && npm init -y >/dev/null &&
//     npm install sms-segments-calculator@1.3.0)
//   NODE_PATH=/tmp/smscalc/node_modules node tests/data/gen_sms_corpus.js \
//     > tests/data/sms_corpus.json
//
// What is taken from the library, per text:
//   encoding = SegmentedMessage.encodingName           ("GSM-7" | "UCS-2")
//   units    = sum of encodedChars[i].codeUnits.length (GSM-7 septets, an
//              extension character counting 2; UTF-16 code units for UCS-2)
//   chars    = numberOfUnicodeScalars
//   segments = segmentsCount
// Nothing in the "encoding"/"units"/"chars"/"segments" fields is written by
// hand or copied from the Rust implementation.
//
// How the library's rules compare with GSM 03.38 / 3GPP TS 23.038 as the
// project applies them (checked by reading its source, src/libs/*.ts):
//   * Character tables: same basic set and extension table (form feed,
//     ^ { } \ [ ~ ] | and the euro sign); ESC (0x1B) itself, the backtick,
//     c-cedilla, etc. are not GSM-7. Same as the project.
//   * Limits: 1120 bits per segment, 6 octets of UDH when concatenated, so
//     160/153 septets and 70/67 UTF-16 units. Same as the project.
//   * A character is never split across segments, so an ESC pair is never
//     split (a part may hold 152 septets) and a surrogate pair is never split
//     (a part may hold 66 units). Same as the project.
//   * Empty text: GSM-7, 0 units, 1 segment. Same as the project.
//     (smsutil 1.1.3 calls empty text UCS-2, also 1 segment.)
//   * DIFFERENCE: the library splits the text into extended grapheme clusters
//     (grapheme-splitter) and never splits a cluster across segments, e.g. a
//     flag (two regional indicators, 4 units) or a ZWJ emoji sequence. The
//     project keeps only surrogate pairs together (a cluster may be split;
//     the handset reassembles the concatenated message anyway). The counts
//     differ only when such a multi-code-point cluster straddles a 67-unit
//     boundary. Those entries keep the library's numbers and carry an extra
//     "deviation" object with the project's count and the reason; the script
//     asserts that the library really disagrees there. (For those texts the
//     Python package smsutil 1.1.3, which splits by code point, gives the
//     project's count.)
//   * Not a difference for this corpus: the library splits CRLF into CR + LF,
//     so CR and LF are one septet each, as in the project.

'use strict';

const { SegmentedMessage } = require('sms-segments-calculator');

const rep = (s, n) => s.repeat(n);
const a = (n) => rep('a', n);
const x = (n) => rep('x', n);

// [text, note?, deviation?]
const cases = [
  // --- basics -------------------------------------------------------------
  ['', 'empty text: 0 units, 1 segment'],
  ['Hello World'],
  ['\n', 'lone LF'],
  ['Line1\r\nLine2\nLine3\r', 'CR and LF are basic-set characters (1 septet each)'],
  [rep('\r\n', 80), '80 CRLF pairs = exactly 160 septets'],
  [rep('\r\n', 80) + 'x', '161 septets of CR/LF/x'],
  ['\f', 'form feed is an extension character (2 septets)'],
  ['\u001b', 'ESC itself is not a user character -> UCS-2 (smsutil 1.1.3 would call it GSM-7)'],
  ['\t', 'TAB is not in GSM 03.38'],

  // --- German ---------------------------------------------------------------
  ['Grüße aus Köln! Die Straße ist über 5 km lang.', 'umlauts and sharp s are in the basic set'],
  ['ÄÖÜ äöü ß', 'all German umlauts plus sharp s'],
  ['Äpfel, Öl und Übermut – ärgerlich', 'en dash forces UCS-2'],
  ['„Hallo“ – bis gleich…', 'German curly quotes, en dash, ellipsis'],
  ['Das Konzert kostet 25 € pro Person.', 'euro sign is an extension character'],
  [
    'Liebe Mitglieder, die Jahreshauptversammlung findet am Samstag, den 14. März, ' +
      'um 18:30 Uhr im Gemeindesaal statt. Bitte bringt eure Mitgliedsausweise mit. ' +
      'Der Kostenbeitrag für das Abendessen beträgt 12 € (Getränke extra). ' +
      'Anmeldungen bitte bis Freitag an den Vorstand. Grüße, Jürgen',
    'realistic multi-part German GSM-7 announcement',
  ],
  [
    '„Wichtig“: Die Übung am Dienstag fällt aus – wir treffen uns stattdessen am ' +
      'Donnerstag um 19 Uhr. Bitte gebt Bescheid, wer kommt… Danke! Eure Übungsleitung',
    'realistic multi-part German UCS-2 announcement (curly quotes, dash, ellipsis)',
  ],
  [rep('ß', 160), '160 x sharp s = exactly 160 septets'],
  [rep('ü', 161), '161 x u-umlaut = 161 septets'],
  [rep('Ä', 152) + '€' + rep('ö', 10), '164 septets; euro would straddle 153 -> part 1 holds 152'],
  [rep('Ä', 152) + '€' + 'ö', '155 septets still fit one message: no split, no 153 rule'],

  // --- extension characters -------------------------------------------------
  ['[ ] { } ~ \\ ^ |', 'brackets, braces, tilde, backslash, caret, pipe'],
  ['\f^{}\\[~]|€', 'the whole extension table: 10 chars, 20 septets'],
  ['Preis: 5 €'],
  [rep('€', 80), '80 euro signs = exactly 160 septets'],
  [rep('€', 81), '81 euro signs = 162 septets; parts of at most 76 pairs (152 septets)'],
  [rep('{', 153), '153 braces = 306 septets = 153*2, but a part can hold only 76 pairs'],
  [a(158) + '|', '158 + pipe = exactly 160 septets'],
  [a(159) + '^', '159 + caret = 161 septets'],
  [a(158) + '\\', '158 + backslash = exactly 160 septets'],
  [a(152) + '~', '154 septets fit a single message; no split needed'],
  [a(152) + '[' + a(10), '164 septets; [ would straddle 153 -> part 1 holds 152'],
  [a(153) + '€' + a(10), '165 septets; euro starts part 2'],
  [a(152) + '€' + a(152), '306 septets with euro straddling 153: 152 | 154 -> 3 parts'],
  [a(151) + '€' + a(153), '306 septets with euro ending exactly at 153 -> 2 parts'],
  [a(152) + '}' + a(151), '305 septets, } straddles 153: 152 | 153 -> 2 parts'],

  // --- plain GSM-7 length boundaries ---------------------------------------
  [a(160), 'exactly 160 septets'],
  [a(161), '161 septets'],
  [a(159) + '€', '161 septets, extension char last'],
  [a(158) + '€', 'exactly 160 septets with extension char last'],
  [a(306), '153*2 septets'],
  [a(307), '153*2+1 septets'],
  [a(459), '153*3 septets'],
  [a(460), '153*3+1 septets'],
  [a(1000), 'long text: 1000 septets'],

  // --- full basic set --------------------------------------------------------
  [
    '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡' +
      'ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
    'the whole basic set except ESC: 127 septets',
  ],
  [
    rep('@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà', 5) + rep('^{}\\[~]|€', 3),
    'basic + extension mix over 2 parts',
  ],
  ['ΔΦΓΛΩΠΨΣΘΞ', 'GSM Greek capitals'],
  ['αβγ', 'Greek lowercase is not GSM-7'],
  ['Α', 'GREEK CAPITAL ALPHA (looks like A) is not GSM-7'],
  ['Ç', 'capital C-cedilla is GSM-7'],
  ['ç', 'small c-cedilla is not GSM-7'],
  ['`code`', 'backtick is not GSM-7'],
  ['á í ó ú ê â', 'other Latin accents are not GSM-7'],
  ['$ vs ¢', 'cent sign is not GSM-7'],
  ['10\u00a0€', 'no-break space forces UCS-2'],
  ['Warte…', 'ellipsis forces UCS-2'],
  ['A — B', 'em dash forces UCS-2'],
  ['‘single’', 'curly single quotes'],
  ['a\u200bb', 'zero-width space forces UCS-2'],
  ['e\u0301', 'decomposed e-acute (combining mark) is UCS-2'],
  ['你好，世界', 'CJK'],

  // --- UCS-2 boundaries ---------------------------------------------------------
  [rep('ç', 70), 'exactly 70 UCS-2 units'],
  [rep('ç', 71), '71 UCS-2 units'],
  [x(69) + 'ç', 'exactly 70 units, GSM chars count 1 unit in UCS-2'],
  ['ç' + x(67) + '😀', 'exactly 70 units with an emoji last'],
  ['ç' + x(68) + '😀', '71 units, emoji at the end'],
  [rep('ç', 134), '67*2 units'],
  [rep('ç', 135), '67*2+1 units'],
  [rep('ç', 201), '67*3 units'],
  [rep('ç', 202), '67*3+1 units'],
  ['ç' + x(65) + '😀' + x(66), '134 units, emoji straddles 67: 66 | 68 -> 3 parts'],
  ['ç' + x(64) + '😀' + x(67), '134 units, emoji ends exactly at 67 -> 2 parts'],
  ['ç' + x(65) + '😀' + x(65), '133 units, emoji straddles 67: 66 | 67 -> 2 parts'],
  ['😀', 'single emoji = 2 UTF-16 units'],
  ['Hi 👋', 'emoji with GSM text'],
  [rep('😀', 35), '35 emoji = exactly 70 units'],
  [rep('😀', 36), '36 emoji = 72 units'],
  [rep('😀', 100), '200 units of emoji: parts of 66 -> 4 parts (not 3)'],
  ['Party 🎉 am Freitag – „alle“ sind eingeladen! 🥳', 'emoji + curly quotes + dash'],
  [
    'ç' + x(64) + '🇩🇪' + x(65),
    'flag (2 regional indicators, 4 units) straddles 67; 134 units',
    {
      segments: 2,
      reason:
        'library never splits a grapheme cluster (65 | 69 units -> 3 parts); the project only ' +
        'keeps surrogate pairs together: 67 | 67 -> 2 parts (smsutil 1.1.3 also gives 2)',
    },
  ],
  [
    'ç' + x(63) + '👨‍👩‍👧' + x(62),
    'ZWJ family emoji (8 units) straddles 67; 134 units',
    {
      segments: 2,
      reason:
        'library never splits a grapheme cluster (64 | 70 units -> 3 parts); the project only ' +
        'keeps surrogate pairs together: 67 | 67 -> 2 parts (smsutil 1.1.3 also gives 2)',
    },
  ],
  ['👍🏽 ok', 'emoji with skin-tone modifier, no boundary involved'],
];

const out = cases.map(([text, note, deviation]) => {
  const m = new SegmentedMessage(text);
  const units = m.encodedChars.reduce((n, c) => n + c.codeUnits.length, 0);
  const entry = {
    text,
    encoding: m.encodingName,
    chars: m.numberOfUnicodeScalars,
    units,
    segments: m.segmentsCount,
  };
  if (note) entry.note = note;
  if (deviation) {
    if (deviation.segments === m.segmentsCount) {
      throw new Error(`deviation declared but library agrees for: ${note}`);
    }
    entry.deviation = deviation;
  }
  return entry;
});

process.stdout.write(JSON.stringify(out, null, 1) + '\n');
process.stderr.write(`${out.length} entries\n`);
