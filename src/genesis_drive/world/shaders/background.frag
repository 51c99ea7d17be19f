// Clears the G-buffer of one view: no face, depth 0 (read back as +inf).
layout(location = 0) out int o_face;
layout(location = 1) out float o_depth;

void main() {
    o_face = 0;
    o_depth = 0.0;
}
