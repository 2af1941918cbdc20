#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bedrock_balancer::fuzz_checks::eventstream_decoder(data);
});
