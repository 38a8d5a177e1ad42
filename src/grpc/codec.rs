//! Protobuf over gRPC with small per-call buffers.
//!
//! tonic starts every call with an 8 KiB encode buffer and keeps it for the call's life.
//! A WatchStatus stream is idle nearly all of its life, and ten thousand of them would
//! hold 80 MB of empty buffers; these start at 1 KiB and grow only when a message needs
//! it. Measured with benches/watch_streams.rs (see the README).

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

const BUFFER_SIZE: usize = 1024;
/// Hand encoded messages to the transport once this much is buffered. tonic's 32 KiB
/// lets a burst (a WABA's first snapshot) grow the buffer to that size, and the buffer
/// keeps the grown allocation for the rest of the stream: hand them over message by message.
const YIELD_THRESHOLD: usize = BUFFER_SIZE;

#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }
}
