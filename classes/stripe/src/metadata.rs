//! gstripe's label, byte for byte as `sys/geom/stripe/g_stripe.h` lays it out in the last
//! sector of every component (little endian, 72 bytes, the rest of the sector zero):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | magic `"GEOM::STRIPE"` |
//! | 16 | 4 | version (3) |
//! | 20 | 16 | device name (the provider is `stripe/<name>`) |
//! | 36 | 4 | device id (random, shared by the components of one device) |
//! | 40 | 2 | this component's number |
//! | 42 | 2 | number of components |
//! | 44 | 4 | stripe size in bytes |
//! | 48 | 16 | hard-coded provider name (`-h`), or zeros |
//! | 64 | 8 | the component's size when labeled |

use geom_core::metadata::{MetaError, MetaReader, MetaWriter, Metadata};

/// A device or provider name field: up to 16 bytes, NUL-padded.
pub type Name = heapless::String<16>;

/// `G_STRIPE_MAGIC`.
pub const G_STRIPE_MAGIC: &[u8] = b"GEOM::STRIPE";
/// `G_STRIPE_VERSION`: 0 first; 1 added `gstripe stop`; 2 the hard-coded provider; 3 the
/// provider size.
pub const G_STRIPE_VERSION: u32 = 3;

/// One component's label (`struct g_stripe_metadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeMetadata {
    /// The version it was written with (what `gstripe dump` shows); encoding always writes
    /// [`G_STRIPE_VERSION`].
    pub version: u32,
    /// The device's name.
    pub name: Name,
    /// The device's id.
    pub id: u32,
    /// This component's number, `0..all`.
    pub no: u16,
    /// How many components the device has.
    pub all: u16,
    /// The stripe size in bytes.
    pub stripesize: u32,
    /// The provider this label belongs to, if hard-coded (`-h`); empty otherwise. Always
    /// empty in labels older than version 2.
    pub provider: Name,
    /// The component's size when labeled; `None` in labels older than version 3 (which
    /// match any size).
    pub provsize: Option<u64>,
}

impl Metadata for StripeMetadata {
    const MAGIC: &'static [u8] = G_STRIPE_MAGIC;
    const VERSION: u32 = G_STRIPE_VERSION;
    const OLDEST_VERSION: u32 = 0;

    fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError> {
        w.str_field::<16>(&self.name)?;
        w.u32(self.id)?;
        w.u16(self.no)?;
        w.u16(self.all)?;
        w.u32(self.stripesize)?;
        w.str_field::<16>(&self.provider)?;
        w.u64(self.provsize.unwrap_or(0))
    }

    fn decode(version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError> {
        let name = r.str_field::<16>()?;
        let id = r.u32()?;
        let no = r.u16()?;
        let all = r.u16()?;
        let stripesize = r.u32()?;
        let provider = r.array::<16>()?;
        let provsize = r.u64()?;
        // Fields a version did not have yet hold whatever the old tool left there.
        Ok(StripeMetadata {
            version,
            name,
            id,
            no,
            all,
            stripesize,
            provider: if version < 2 { Name::new() } else { MetaReader::new(&provider).str_field::<16>()? },
            provsize: if version < 3 { None } else { Some(provsize) },
        })
    }
}
