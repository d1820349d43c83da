from config.settings import LaneConfig, Settings, SettingsError, load_settings

__all__ = ["LaneConfig", "Settings", "SettingsError", "load_settings"]
