//! Protobuf over gRPC with no idle per-call buffer.
//!
//! tonic starts every call with an 8 KiB encode buffer and keeps it, grown to the largest
//! burst, for the call's life. A WatchStatus stream is idle nearly all of its life, and ten
//! thousand of them would hold 80 MB of empty buffers. This codec starts with no buffer,
//! reserves exactly what each message needs and hands every message to the transport on
//! its own, so what a stream keeps between events is the last message it sent, no more.
//! Measured with benches/watch_streams.rs (see the README).

use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::{ProstCodec, ProstDecoder};

/// Requests are decoded once, and the buffer dropped with the request.
const DECODE_BUFFER_SIZE: usize = 1024;

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
    type Encoder = LeanEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        LeanEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(DECODE_BUFFER_SIZE, DECODE_BUFFER_SIZE))
    }
}

/// Encodes each message into exactly the room it needs. (Clients generated from the
/// proto use it too.) Buffer size 0 is safe only because tonic is built without its
/// compression features: compressing grows buffers in steps of that size, and would
/// divide by it.
#[derive(Debug)]
pub struct LeanEncoder<T>(PhantomData<T>);

impl<T: prost::Message> Encoder for LeanEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a response: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        // No buffer until the first message; yield after every message.
        BufferSettings::new(0, 0)
    }
}
