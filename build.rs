//! Compiles the proto contract with protox (pure Rust), so no protoc is needed.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/whatsapp/phonenumbers/v1/phone_numbers.proto",
        "proto/whatsapp/phonenumbers/v1/customers.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    // `sqlx::migrate!` embeds migrations/: rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Served by gRPC reflection, so grpcurl can describe the service.
    std::fs::write(
        out.join("phone_numbers_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        // Their Debug is written by hand (src/grpc/mod.rs): it must not print the PIN
        // or the code.
        .skip_debug([
            "whatsapp.phonenumbers.v1.RegisterRequest",
            "whatsapp.phonenumbers.v1.SetTwoStepPinRequest",
            "whatsapp.phonenumbers.v1.VerifyCodeRequest",
            "whatsapp.phonenumbers.v1.OnboardCustomerRequest",
        ])
        // google.rpc.Status (vendored in proto/google/rpc for the contract) is tonic-types'.
        .extern_path(".google.rpc", "::tonic_types::pb")
        // Small per-call buffers: see src/grpc/codec.rs.
        .codec_path("crate::grpc::codec::LeanCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
