//! Splits the vendored libphonenumber metadata into one postcard blob per region, so that
//! `src/phone.rs` can build a `phonenumber` database of only the country codes it needs
//! (building the crate's full database costs ~50 ms of regex validation).
//!
//! Writes to OUT_DIR:
//! - `phone_regions.bin`: the blobs, back to back (each a postcard `loader::Metadata`, without
//!   the formatting rules);
//! - `phone_index.rs`: `REGIONS: &[(region id, country code, start, end)]`, in XML order
//!   (the order matters: `Database::from` keeps it among the regions of one country code).

use std::fmt::Write as _;
use std::path::Path;

const XML: &str = "assets/phonenumber/PhoneNumberMetadata.xml";

fn main() {
    println!("cargo:rerun-if-changed={XML}");
    println!("cargo:rerun-if-changed=build.rs");

    let file = std::fs::File::open(XML).expect("open the phone-number metadata");
    let mut regions = phonenumber::metadata::loader::load(std::io::BufReader::new(file)).expect("parse the metadata");
    for region in &mut regions {
        // Only the crate's formatter reads the formats, and src/phone.rs never formats with its
        // databases; validating their regexes is ~3/4 of building a region (DE: 1.4 -> 0.3 ms).
        region.formats.clear();
        region.international_formats.clear();
        // Loader scratch space, unused by `Database::from`.
        region.defaults = Default::default();
    }

    let mut blobs = Vec::new();
    let mut index = String::from("pub(crate) static REGIONS: &[(&str, u16, usize, usize)] = &[\n");
    for region in &regions {
        let id = region.id.as_deref().expect("every territory has an id");
        let code = region.country_code.expect("every territory has a country code");
        let start = blobs.len();
        blobs.extend(postcard::to_stdvec(region).expect("serialize a region"));
        writeln!(index, "    ({id:?}, {code}, {start}, {}),", blobs.len()).unwrap();
    }
    index.push_str("];\n");

    let out = std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo");
    std::fs::write(Path::new(&out).join("phone_regions.bin"), blobs).expect("write the blobs");
    std::fs::write(Path::new(&out).join("phone_index.rs"), index).expect("write the index");
}
